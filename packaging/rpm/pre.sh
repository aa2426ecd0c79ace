#!/bin/sh
# outpost-agent %pre (rpm runs it with $1 = 1 on install, 2 on upgrade): the user "outpost"
# before the files land. The heredoc is packaging/sysusers.d/outpost-agent.conf (the package
# installs that file too; keep them in step: scripts/test-packages.sh checks); useradd where
# systemd-sysusers is absent. Then group adm, which reads most of /var/log, outside the unit
# too (the unit also sets SupplementaryGroups=adm). A failure stops the installation.
set -e
if command -v systemd-sysusers >/dev/null 2>&1; then
	systemd-sysusers --replace=/usr/lib/sysusers.d/outpost-agent.conf - <<'SYSUSERS'
u outpost - "Outpost agent" /var/lib/outpost
SYSUSERS
else
	getent group outpost >/dev/null || groupadd --system outpost
	getent passwd outpost >/dev/null ||
		useradd --system --gid outpost --home-dir /var/lib/outpost --no-create-home \
			--shell /usr/sbin/nologin --comment "Outpost agent" outpost
fi
if getent group adm >/dev/null; then
	usermod --append --groups adm outpost
fi
exit 0
