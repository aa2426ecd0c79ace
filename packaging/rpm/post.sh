#!/bin/sh
# outpost-agent %post ($1 = 1 on install, 2 or more on upgrade). The state and drop-in
# directories, created only when missing (cargo-generate-rpm cannot ship a directory; an
# existing state directory is left as it is: systemd hands it to the service user at start,
# recursively, when its owner differs). On a first install, enable the unit (works without a
# running systemd) and start it where systemd runs; a start that fails (no sink token yet,
# say) does not fail the installation. Upgrades restart in %postun.
set -e
[ -d /var/lib/outpost ] || install -d -m 0750 -o outpost -g outpost /var/lib/outpost
[ -d /etc/outpost/agent.d ] || install -d -m 0755 /etc/outpost/agent.d
if [ "$1" -eq 1 ]; then
	systemctl enable outpost-agent.service >/dev/null 2>&1 || true
	if [ -d /run/systemd/system ]; then
		systemctl daemon-reload >/dev/null 2>&1 || true
		systemctl start outpost-agent.service >/dev/null 2>&1 || true
	fi
fi
exit 0
