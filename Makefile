# Installs init-agent for admins: the static binary, the dracut module, the
# initramfs-tools integration and the shipped hooks, in the standard places.
#   make install [DESTDIR=/srv/nfs4/clusternoderoot] [PREFIX=/usr]
# then build an image in that root with dracut or update-initramfs (README).
#   make deb   -> target/init-agent_<version>_amd64.deb, the same files for dpkg
PREFIX ?= /usr
DESTDIR ?=
# cargo's output directory: CARGO_TARGET_DIR when set (worktrees sharing one), else target.
TARGET := $(or $(CARGO_TARGET_DIR),target)
BIN := $(TARGET)/x86_64-unknown-linux-gnu/release/init-agent
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' init-agent/Cargo.toml | head -n 1)
DEB := $(TARGET)/init-agent_$(VERSION)_amd64.deb

.PHONY: all build install uninstall deb
all: build

build:
	cargo build --release --locked

install: build
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/sbin/init-agent
	install -D -m 0755 dracut-module/90init-agent/module-setup.sh \
		$(DESTDIR)$(PREFIX)/lib/dracut/modules.d/90init-agent/module-setup.sh
	install -D -m 0755 dracut-module/90init-agent/init-agent-pre-pivot.sh \
		$(DESTDIR)$(PREFIX)/lib/dracut/modules.d/90init-agent/init-agent-pre-pivot.sh
	install -D -m 0755 initramfs-tools/hooks/init-agent \
		$(DESTDIR)$(PREFIX)/share/initramfs-tools/hooks/init-agent
	install -D -m 0644 initramfs-tools/scripts/init-agent \
		$(DESTDIR)$(PREFIX)/share/initramfs-tools/scripts/init-agent
	install -D -m 0644 initramfs-tools/conf.d/init-agent \
		$(DESTDIR)/etc/initramfs-tools/conf.d/init-agent
	for h in hooks/post-sync.d/*; do \
		install -D -m 0755 $$h $(DESTDIR)$(PREFIX)/lib/init-agent/$$h; \
	done
	install -D -m 0644 conf/init-agent.toml $(DESTDIR)$(PREFIX)/share/doc/init-agent/init-agent.toml.example

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/sbin/init-agent
	rm -rf $(DESTDIR)$(PREFIX)/lib/dracut/modules.d/90init-agent
	rm -f $(DESTDIR)$(PREFIX)/share/initramfs-tools/hooks/init-agent
	rm -f $(DESTDIR)$(PREFIX)/share/initramfs-tools/scripts/init-agent
	rm -f $(DESTDIR)/etc/initramfs-tools/conf.d/init-agent
	rm -rf $(DESTDIR)$(PREFIX)/lib/init-agent
	rm -rf $(DESTDIR)$(PREFIX)/share/doc/init-agent

# dpkg-deb, not cargo-deb: the package is `make install`'s tree plus a
# control file, and dpkg-deb is on every Debian machine.
deb: build
	rm -rf $(TARGET)/deb-root
	$(MAKE) -s install DESTDIR=$(abspath $(TARGET))/deb-root PREFIX=/usr
	mkdir -p $(TARGET)/deb-root/DEBIAN
	sed -e 's/@VERSION@/$(VERSION)/' -e "s/@SIZE@/$$(du -sk $(TARGET)/deb-root | cut -f1)/" \
		packaging/control.in >$(TARGET)/deb-root/DEBIAN/control
	echo /etc/initramfs-tools/conf.d/init-agent >$(TARGET)/deb-root/DEBIAN/conffiles
	dpkg-deb --root-owner-group -Zgzip --build $(TARGET)/deb-root $(DEB) >/dev/null
	@echo $(DEB)
