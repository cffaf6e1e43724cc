# `make testsign`: test-signed copy of the package in out/testsign/ (scripts/testsign.sh):
# embedded signatures in the .sys files, the signed catalogs (out/package/<arch>/aerovblk.cat,
# mk/package.mk), the test certificate. SOURCE_DATE_EPOCH (exported by mk/package.mk) is
# the signing time.
.PHONY: testsign
testsign: package
	@scripts/testsign.sh
CHECK_DEPS += testsign
