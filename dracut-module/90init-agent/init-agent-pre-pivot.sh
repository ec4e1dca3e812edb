#!/bin/sh
# dracut pre-pivot hook: the standard root is mounted on $NEWROOT by dracut's
# nfs module. init-agent assembles the node's root there; on failure its
# configured fallback (local: the last complete copy) is tried first, then
# dracut's emergency shell (rd.shell) or halt.
command -v getarg >/dev/null || . /lib/dracut-lib.sh

# Boots that do not ask for init-agent stay plain dracut NFS roots.
if getarg initagent.mode= >/dev/null || getarg STATEMNT= >/dev/null || [ -f /etc/init-agent.toml ]; then
    /usr/sbin/init-agent hosted --root "$NEWROOT" \
        || die "init-agent could not assemble the root (the lines above say why)"
fi
