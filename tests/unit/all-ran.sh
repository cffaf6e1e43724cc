# Sourced by the unit-test checks (20, 22, 30, 40, 41, 70/71). all_tests_ran SRC LOG:
# every test of SRC's `CMUnitTest tests[]` array ran and passed ("[       OK ] name"),
# exactly that many passed ("[  PASSED  ] N tests"), and every test_*(void **) function
# SRC defines is in the array. A dropped, skipped or unregistered test fails (prints why,
# returns 1); on success sets $ntests.
all_tests_ran() {
  local src=$1 log=$2 names want n t
  names=$(awk '/CMUnitTest tests\[\] = \{/ {f = 1; next} f && /^[ \t]*\};/ {f = 0} f' "$src" \
          | sed -n 's/^[ \t]*cmocka_unit_test[a-z_]*(\([A-Za-z0-9_]*\).*/\1/p')
  want=$(echo "$names" | grep -c .)
  n=$(echo "$log" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p')
  [ "$want" -gt 0 ] && [ "${n:-0}" -eq "$want" ] || { echo "FAIL: ${n:-0} tests passed, $src lists $want"; return 1; }
  for t in $names; do
    echo "$log" | grep -qx "\[       OK \] $t" || { echo "FAIL: test $t did not pass"; return 1; }
  done
  for t in $(grep -ohE '\bvoid test_[A-Za-z0-9_]+\(void \*\*' "$src" | sed 's/.*void \(test_[A-Za-z0-9_]*\)(.*/\1/'); do
    echo "$names" | grep -qx "$t" || { echo "FAIL: $t is defined in $src but not in its tests[] array"; return 1; }
  done
  ntests=$n
}
