# Helpers of the diagnostics checks tests/checks/5[4-9]-*.sh: the simulator checks'
# helpers (tests/sim/common.sh), with their scratch files in out/check-diag/.
CHECK_AREA=${CHECK_AREA:-check-diag}
. "$(dirname "${BASH_SOURCE[0]}")/../sim/common.sh"
