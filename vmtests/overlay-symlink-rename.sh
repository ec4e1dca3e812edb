#!/usr/bin/env bash
# Does ltsp/ltsp#860 bite on our kernel? Renaming a symlink that lives in an
# NFS lower layer of an overlayfs failed with ENXIO on kernels >= 5.15. Boots
# the Debian cloud kernel in QEMU against nfs-ganesha, mounts the export as
# the lower layer with init-agent's overlay options and with the kernel's
# defaults, renames a lower symlink, a lower file and a fresh symlink, and
# checks every result from the serial console. Exit 0 when all renames work.
set -euo pipefail
. "$(dirname "$0")/lib/setup.sh"
vm_install
vm_kernel

T=$WORK/overlay-rename
rm -rf "$T"
mkdir -p "$T/export" "$T/initrd/bin"
echo target >"$T/export/target"
ln -s target "$T/export/lnk"
ln -s target "$T/export/lnk2"
echo data >"$T/export/file"
cp /bin/busybox "$T/initrd/bin/busybox"
vm_modules "$T/initrd" virtio_pci virtio_net nfsv4 overlay
cat >"$T/initrd/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mkdir -p /proc /sys /dev /tmp /lower /ovl /m1 /m2
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev
for m in $(cat /modules.order); do insmod "/lib/modules/$m"; done
i=0; while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
ip link set lo up; ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0; ip route add default via 10.0.2.2
mount -t nfs4 -o vers=4.2,proto=tcp,port=2049,addr=10.0.2.2 10.0.2.2:/export /lower || echo "RESULT nfs-mount failed"
mount -t tmpfs tmpfs /ovl
mkdir -p /ovl/u1 /ovl/w1 /ovl/u2 /ovl/w2
mount -t overlay overlay -o lowerdir=/lower,upperdir=/ovl/u1,workdir=/ovl/w1,index=off,xino=off /m1 || echo "RESULT overlay1-mount failed"
mount -t overlay overlay -o lowerdir=/lower,upperdir=/ovl/u2,workdir=/ovl/w2 /m2 || echo "RESULT overlay2-mount failed"
for m in m1 m2; do
  mv /$m/lnk /$m/lnk-renamed 2>/tmp/e; echo "RESULT $m lower-symlink rc=$? $(cat /tmp/e)"
  mv /$m/file /$m/file-renamed 2>/tmp/e; echo "RESULT $m lower-file rc=$? $(cat /tmp/e)"
  ln -s target /$m/fresh; mv /$m/fresh /$m/fresh-renamed 2>/tmp/e; echo "RESULT $m fresh-symlink rc=$? $(cat /tmp/e)"
  cp -P /$m/lnk2 /$m/lnk2-copy 2>/tmp/e; echo "RESULT $m copy-symlink rc=$? $(cat /tmp/e)"
done
echo "RESULT kernel $(uname -r)"
poweroff -f
INIT
chmod +x "$T/initrd/init"
(cd "$T/initrd" && find . -print0 | sort -z | cpio --null -o -H newc -R 0:0 --quiet | gzip -1 -n) >"$T/initrd.gz"
vm_with_nfs "$T/export" vm_qemu "$T/initrd.gz" '' 120 | tr -d '\r' | tee "$T/console.log" | grep -a "RESULT" || true
fails=$(grep -a "RESULT" "$T/console.log" | grep -a -v "rc=0\|kernel" || true)
if [ -n "$fails" ] || ! grep -aq "RESULT kernel" "$T/console.log"; then
    echo "overlay symlink rename: FAILED" >&2
    exit 1
fi
echo "overlay symlink rename: all renames work on $(grep -a 'RESULT kernel' "$T/console.log" | awk '{print $3}')"
