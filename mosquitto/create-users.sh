#!/bin/sh
# Create the password file for the housebus broker, asking for each user's password.
#
#   sudo mosquitto/create-users.sh /etc/mosquitto/housebus.passwd
#
# Users: housebus (the gateway), homeassistant, dashboard; see the acl file beside this one.
# Add one later with `mosquitto_passwd FILE NAME`, and send the broker SIGHUP to reload.
set -eu
FILE=${1:-/etc/mosquitto/housebus.passwd}
command -v mosquitto_passwd >/dev/null 2>&1 || PATH=$PATH:/usr/sbin:/usr/bin
if ! command -v mosquitto_passwd >/dev/null 2>&1; then
    echo "mosquitto_passwd not found: install Mosquitto (Debian: apt-get install mosquitto)" >&2
    exit 1
fi
CREATE=-c
[ -f "$FILE" ] && CREATE=
for user in housebus homeassistant dashboard; do
    echo "password for $user:"
    mosquitto_passwd $CREATE "$FILE" "$user"
    CREATE=
done
chmod 0640 "$FILE"
if getent group mosquitto >/dev/null 2>&1; then chgrp mosquitto "$FILE"; fi
echo "wrote $FILE; now point password_file in mosquitto.conf at it and restart Mosquitto"
