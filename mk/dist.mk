# `make dist` (issue 13): the release archives, docs/release.md.
#   out/dist/aerovblk-<version>.zip / .iso              unsigned package (out/package)
#   out/dist/aerovblk-<version>-testsigned.zip / .iso   test-signed package (out/testsign)
#   out/dist/SHA256SUMS                                  the four archives
# Each holds x86/ and amd64/ (aerovblk.sys .inf .cat, aerovblk-query.exe), install.cmd,
# bootdisk.reg, README.txt, SHA256SUMS (+ aerovblk-test.cer when test-signed), made by
# dist/mkdist.py from the templates in dist/. <version> is VERSION's (mk/package.mk reads
# it); SOURCE_DATE_EPOCH (mk/package.mk: the commit time) dates every entry, so two
# builds of one commit with the same test key give byte-identical archives
# (tests/checks/19c-reproducible.sh). Checked by tests/checks/19b-dist.sh.
# Tools: python3 (zip), xorriso (ISO 9660 + Joliet + Rock Ridge). mk/package.mk is read
# after this file: what comes from VERSION is expanded late (=, not :=).
DIST_DIR      := $(OUT)/dist
DIST_NAME      = aerovblk-$(AEROVBLK_VERSION)
DIST_ARCHIVES  = $(foreach s,.zip .iso,$(DIST_DIR)/$(DIST_NAME)$(s) $(DIST_DIR)/$(DIST_NAME)-testsigned$(s))
DIST_MKDIST   = /usr/bin/python3 dist/mkdist.py --version $(AEROVBLK_VERSION) \
                --driverver $(AEROVBLK_DRIVERVER) --epoch $(SOURCE_DATE_EPOCH) --templates dist \
                --out $(DIST_DIR)

.PHONY: dist
# testsign is phony (re-signs every time), so the archives are rebuilt every time too.
dist: package testsign
	@command -v xorriso >/dev/null || { echo "dist: xorriso missing (apt-get install -y xorriso)" >&2; exit 1; }
	@rm -f $(DIST_ARCHIVES) $(DIST_DIR)/SHA256SUMS
	$(DIST_MKDIST) --variant unsigned --x86 $(PKG)/x86 --amd64 $(PKG)/amd64
	$(DIST_MKDIST) --variant testsigned --x86 $(OUT)/testsign/x86 --amd64 $(OUT)/testsign/amd64 \
	    --cert $(OUT)/testsign/x86/aerovblk-test.cer
	cd $(DIST_DIR) && sha256sum $(notdir $(DIST_ARCHIVES)) > SHA256SUMS

CHECK_DEPS += dist
