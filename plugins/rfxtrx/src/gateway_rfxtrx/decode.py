"""``housebus decode rfxtrx HEX...``: what the gateway would publish for a captured frame.

It goes through the same decoder and the same id, alias and name mapping as the running
component, so users can check a capture or report an unknown device without a gateway.
"""

from __future__ import annotations

from typing import Any

from gateway import Decoder
from gateway_rfxtrx import packets
from gateway_rfxtrx.config import RfxtrxConfig


class RfxtrxDecoder(Decoder):
    name = "rfxtrx"
    help = "decode RFXtrx frames given in hex (e.g. 0a520211700200a72d0089)"
    section = "rfxtrx"

    def decode(self, text: str) -> dict[str, Any]:
        hex_text = "".join(text.split())
        try:
            frame = bytes.fromhex(hex_text)
        except ValueError:
            return {"hex": text, "error": "not a hex string"}
        try:
            packet = packets.decode(frame)
        except packets.UnknownPacketError as exc:
            return {"topic": f"{self.base_topic}/rfxtrx/unknown", "payload": {
                "packet_type": f"{exc.packet_type:02x}", "subtype": f"{exc.subtype:02x}", "raw": frame.hex()}}
        except packets.DecodeError as exc:
            return {"hex": hex_text, "error": str(exc)}
        if isinstance(packet, packets.Reading):
            return {"topic": f"{self.base_topic}/rfxtrx/{self._topic(packet.device_id)}", "payload": packet.values}
        if isinstance(packet, packets.Status):
            return {"topic": f"{self.base_topic}/rfxtrx/info", "payload": packet.info}
        if isinstance(packet, packets.TxResponse):
            what = f"transmitter response to seq {packet.seq}: {packet.message}"
        elif isinstance(packet, packets.ReceiverStarted):
            what = f"receiver started: {packet.text!r}"
        else:
            what = "the stick did not know the command (old firmware)"
        return {"hex": hex_text, "error": f"{what}; the gateway publishes nothing for it"}

    def _topic(self, device_id: str) -> str:
        config = self.config
        if not isinstance(config, RfxtrxConfig):
            return device_id
        key = device_id
        for main, device in config.devices.items():
            if device_id in device.aliases:
                key = main
        found = config.devices.get(key)
        return (found.name if found else None) or key
