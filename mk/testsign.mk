# `make testsign`: test-signed copy of the package in out/testsign/ (scripts/testsign.sh).
.PHONY: testsign
testsign: package
	@scripts/testsign.sh
CHECK_DEPS += testsign
