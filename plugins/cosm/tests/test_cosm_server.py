"""The suite's Cosm-v2 server, over real HTTP: it must be as strict as Cosm, or the forwarder's tests prove little."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from gateway_cosm.server import CosmServer

KEY = "test-key-123"


@pytest.fixture
def cosm() -> Iterator[CosmServer]:
    with CosmServer(KEY) as server:
        yield server


def feed_body(*streams: tuple[str, list[tuple[str, str]]]) -> dict[str, Any]:
    return {"version": "1.0.0", "datastreams": [
        {"id": ds, "current_value": points[-1][1], "datapoints": [{"at": at, "value": v} for at, v in points]}
        for ds, points in streams]}


def put(cosm: CosmServer, body: Any, *, feed: int = 7, key: str | None = KEY, timeout: float = 5,
        path: str | None = None) -> requests.Response:
    headers = {"X-ApiKey": key} if key is not None else {}
    url = cosm.url + (path or f"/feeds/{feed}.json")
    if isinstance(body, bytes):
        return requests.put(url, data=body, headers=headers, timeout=timeout)
    return requests.put(url, json=body, headers=headers, timeout=timeout)


KITCHEN = [("2013-04-22T00:35:43Z", "21.5"), ("2013-04-22T00:36:43.250000+00:00", "21.75")]


def test_an_accepted_feed_update_is_answered_200_without_a_body_and_recorded(cosm):
    answer = put(cosm, feed_body(("kitchen_temperature", KITCHEN), ("garden-1", [("2013-04-22T00:35:00Z", "9")])))
    assert (answer.status_code, answer.content) == (200, b"")
    assert cosm.datapoints(7, "kitchen_temperature") == KITCHEN
    assert cosm.datapoints(7, "garden-1") == [("2013-04-22T00:35:00Z", "9")]
    assert cosm.datapoints(8, "kitchen_temperature") == []  # per feed
    [request] = cosm.requests
    assert (request.method, request.path, request.status) == ("PUT", "/v2/feeds/7.json", 200)
    assert request.headers["X-ApiKey"] == KEY  # under Cosm's spelling, whatever case the client sent
    assert request.body["datastreams"][0]["id"] == "kitchen_temperature"


def test_datapoints_keep_arrival_order_across_requests(cosm):
    put(cosm, feed_body(("t", [("2013-04-22T00:00:02Z", "2")])))
    put(cosm, feed_body(("t", [("2013-04-22T00:00:01Z", "1"), ("2013-04-22T00:00:03Z", "3")])))
    assert [v for _, v in cosm.datapoints(7, "t")] == ["2", "1", "3"]


@pytest.mark.parametrize("key", ["wrong-key", None, KEY.upper()])
def test_a_wrong_or_missing_api_key_is_answered_401_and_nothing_is_recorded(cosm, key):
    answer = put(cosm, feed_body(("t", KITCHEN)), key=key)
    assert answer.status_code == 401
    assert answer.json()["title"] == "Unauthorized"
    assert KEY not in answer.text
    assert cosm.datapoints(7, "t") == []
    assert [r.status for r in cosm.requests] == [401]


def test_unknown_paths_and_other_methods_are_answered_404(cosm):
    assert put(cosm, feed_body(("t", KITCHEN)), path="/feeds/7.xml").status_code == 404
    assert put(cosm, feed_body(("t", KITCHEN)), path="/feeds/seven.json").status_code == 404
    assert requests.post(cosm.url + "/feeds/7.json", json=feed_body(("t", KITCHEN)),
                         headers={"X-ApiKey": KEY}, timeout=5).status_code == 404  # Cosm: POST is wrong
    assert cosm.datapoints(7, "t") == []


def test_a_body_that_is_not_json_is_answered_400(cosm):
    answer = put(cosm, b'{"version": "1.0.0", "datastreams": [')
    assert answer.status_code == 400
    assert "JSON" in answer.json()["errors"]
    assert cosm.requests[0].body is None


def stream(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"id": "t", "current_value": "1", "datapoints": [{"at": "2013-04-22T00:00:01Z",
                                                                             "value": "1"}]}
    return {k: v for k, v in (base | changes).items() if v is not ...}


@pytest.mark.parametrize(("body", "complaint"), [
    ([], "JSON object"),
    ({"datastreams": [stream()]}, "version"),
    ({"version": "1.0.0", "datastreams": []}, "datastreams"),
    ({"version": "1.0.0", "datastreams": [stream(id="kitchen temperature")]}, "datastream id"),
    ({"version": "1.0.0", "datastreams": [stream(id=...)]}, "datastream id"),
    ({"version": "1.0.0", "datastreams": [stream(current_value=21.5)]}, "current_value"),
    ({"version": "1.0.0", "datastreams": [stream(datapoints=[{"at": "2013-04-22T00:00:01Z", "value": 1}])]},
     "value"),
    ({"version": "1.0.0", "datastreams": [stream(datapoints=[{"at": "2013-04-22T00:00:01Z", "value": "1" * 33}])]},
     "value"),
    ({"version": "1.0.0", "datastreams": [stream(datapoints=[{"at": "yesterday", "value": "1"}])]}, "'at'"),
    ({"version": "1.0.0", "datastreams": [stream(datapoints=[{"at": "2013-04-22T00:00:01", "value": "1"}])]},
     "'at'"),  # no offset: not a UTC time
    ({"version": "1.0.0", "datastreams": [stream(datapoints=[{"at": "2013-04-22T02:00:01+02:00", "value": "1"}])]},
     "'at'"),  # an offset other than UTC
    ({"version": "1.0.0", "datastreams": [stream(datapoints=[{"value": "1"}])]}, "'at'"),
])
def test_a_json_body_of_the_wrong_shape_is_answered_422_and_nothing_is_recorded(cosm, body, complaint):
    answer = put(cosm, body)
    assert answer.status_code == 422
    assert complaint in answer.json()["errors"]
    assert cosm.datapoints(7, "t") == []


def test_one_bad_datastream_rejects_the_whole_request(cosm):
    body = feed_body(("good", KITCHEN), ("bad id", KITCHEN))
    assert put(cosm, body).status_code == 422
    assert cosm.datapoints(7, "good") == []


def test_fail_with_answers_the_next_requests_with_the_status_then_recovers(cosm):
    cosm.fail_with(503, times=2)
    body = feed_body(("t", KITCHEN))
    assert [put(cosm, body).status_code for _ in range(3)] == [503, 503, 200]
    assert cosm.datapoints(7, "t") == KITCHEN  # only the third was accepted
    assert [r.status for r in cosm.requests] == [503, 503, 200]


def test_fail_with_without_a_count_lasts_until_cleared(cosm):
    cosm.fail_with(403)  # Cosm's rate-limit answer
    body = feed_body(("t", KITCHEN))
    assert [put(cosm, body).status_code for _ in range(4)] == [403] * 4
    assert cosm.datapoints(7, "t") == []
    cosm.fail_with(0)
    assert put(cosm, body).status_code == 200
    assert cosm.datapoints(7, "t") == KITCHEN


def test_hang_makes_a_client_with_a_short_read_timeout_time_out(cosm):
    cosm.hang(1)
    with pytest.raises(requests.exceptions.ReadTimeout):
        put(cosm, feed_body(("t", KITCHEN)), timeout=0.3)
    cosm.hang(0)
    assert put(cosm, feed_body(("t", [("2013-04-22T00:00:09Z", "9")])), timeout=5).status_code == 200
    # The hung request is still answered, and accepted, once its delay is over: a client that timed
    # out cannot know whether its update arrived.
    cosm.wait_for(lambda s: len(s.requests) == 2, timeout=10)
    assert sorted(cosm.datapoints(7, "t")) == sorted([*KITCHEN, ("2013-04-22T00:00:09Z", "9")])


def test_wait_for_names_what_it_saw_when_it_times_out(cosm):
    put(cosm, feed_body(("t", KITCHEN)), key="wrong")
    with pytest.raises(TimeoutError, match=r"1 requests .*PUT /v2/feeds/7.json -> 401"):
        cosm.wait_for(lambda s: bool(s.datapoints(7, "t")), timeout=0.2)


def test_wait_for_returns_once_a_request_makes_the_condition_true(cosm):
    put(cosm, feed_body(("t", KITCHEN)))
    cosm.wait_for(lambda s: s.datapoints(7, "t") == KITCHEN, timeout=5)


def test_url_needs_a_started_server():
    server = CosmServer(KEY)
    with pytest.raises(RuntimeError, match="not started"):
        _ = server.url
    with server:
        assert server.url.startswith("http://127.0.0.1:") and server.url.endswith("/v2")
