# The mutation harness (issue 17): tools/mutants.py plants one bug at a time from
# tests/mutants/mutants.txt into a scratch copy of the working tree (uncommitted and
# untracked files included, prebuilt out/ reused), builds it, and runs the checks that
# claim to cover it. docs/testing.md: how it works, how to add a mutant, the last table.
#
#   make mutants                          every mutant; report in out/mutants/report.md
#   make mutants MUTANTS=id1,id2          a selection
#   make mutants MUTANTS_FLAGS=--keep     extra tools/mutants.py run options
#                                         (--all-checks, --keep, --jobs N, --check-timeout S)
#   make mutants-list / mutants-verify    list them / check every mutation still applies
# Exit status: 0 only if every mutant was killed. Mutants run one after another; the
# builds use make -j2. tests/checks/98-mutants-subset.sh runs three of them in make check.
MUTANTS       ?=
MUTANTS_FLAGS ?=
MUTANTS_PY    := /usr/bin/python3 tools/mutants.py

.PHONY: mutants mutants-list mutants-verify mutants-print-deps
mutants:
	@$(MUTANTS_PY) run $(if $(strip $(MUTANTS)),--mutants '$(MUTANTS)') $(MUTANTS_FLAGS)
mutants-list:
	@$(MUTANTS_PY) list $(if $(strip $(MUTANTS)),--mutants '$(MUTANTS)')
mutants-verify:
	@$(MUTANTS_PY) verify $(if $(strip $(MUTANTS)),--mutants '$(MUTANTS)')
# What a mutant's default build makes (tools/mutants.py drops the phony dist/testsign):
# every build product `make check` needs. Expanded when run, after all mk files are read.
mutants-print-deps:
	@echo $(CHECK_DEPS)
