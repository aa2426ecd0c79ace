#!/bin/sh
# outpost-agent %preun ($1 = 0 on erase, 1 on upgrade): on erase, stop and disable the agent.
if [ "$1" -eq 0 ]; then
	systemctl --no-reload disable outpost-agent.service >/dev/null 2>&1 || true
	if [ -d /run/systemd/system ]; then
		systemctl stop outpost-agent.service >/dev/null 2>&1 || true
	fi
fi
exit 0
