# Helpers of the lifecycle checks tests/checks/6x-*.sh (sourced after common.sh).

# The run must also be clean of sanitizer reports (ASan/UBSan/LSan print on stderr).
check_sanitizers() {
    local name=$1
    if grep -qE "AddressSanitizer|LeakSanitizer|runtime error:" "$SCRATCH/$name.err"; then
        echo "FAIL  [$name] sanitizer report:"; grep -m5 -E "Sanitizer|runtime error:" "$SCRATCH/$name.err" | sed 's/^/      /'
        FAILS=$((FAILS + 1))
    else
        echo "ok    [$name] no sanitizer report"
    fi
}

lifecycle_clean() { check_clean "$1"; check_sanitizers "$1"; }

# Python helpers for check expressions: LOG("0xa0b10c") = a StorPortLogError / port event
# containing the text was logged; NLOG(text) = how many.
LOG='(lambda t: any(t in l for l in j["log"]))'
NLOG='(lambda t: sum(t in l for l in j["log"]))'
