#!/bin/sh
# outpost-agent %postun ($1 = 0 on erase, 1 on upgrade): reload systemd, and after an upgrade
# restart a running agent on the new binary. rpm has no purge: an erase removes the drop-in
# directory and /etc/outpost when empty, and keeps the state in /var/lib/outpost and the user
# "outpost" (docs/install.md says how to remove them).
if [ "$1" -eq 0 ]; then
	rmdir /etc/outpost/agent.d 2>/dev/null || true
	rmdir /etc/outpost 2>/dev/null || true
fi
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
	if [ "$1" -ge 1 ]; then
		systemctl try-restart outpost-agent.service >/dev/null 2>&1 || true
	fi
fi
exit 0
