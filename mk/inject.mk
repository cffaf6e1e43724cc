# Offline migration tools (issue 14; docs/migration.md): Linux programs, staged into out/bin/
# by `make` (package) and `make check`. Both are Python 3 scripts run by /usr/bin/python3
# (Debian's, which has the python3-hivex and python3-pefile bindings).
#   out/bin/aerovblk-inject   aerovblk.sys + boot-start service + Critical Device Database
#                             into an offline Windows 7 disk image (raw/qcow2) or WIM
#   out/bin/aerovblk-vm       QEMU launcher: Windows 7 on virtio-blk, or --data-disk
# aerovblk-inject finds the drivers at ../package/{x86,amd64}/aerovblk.sys from its own
# directory (out/package: mk/package.mk) unless --driver-dir says otherwise; aerovblk-vm
# finds the `make dist` ISO at ../dist/.
INJECT_BIN := $(OUT)/bin/aerovblk-inject $(OUT)/bin/aerovblk-vm

$(OUT)/bin/%: tools/%
	@mkdir -p $(dir $@)
	/usr/bin/python3 -c 'import ast,sys; ast.parse(open(sys.argv[1]).read(), sys.argv[1])' $<
	install -m 0755 $< $@

.PHONY: inject-tools
inject-tools: $(INJECT_BIN)
package: $(INJECT_BIN)
CHECK_DEPS += $(INJECT_BIN)
