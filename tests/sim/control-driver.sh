# Negative controls of issue 11 (sourced by 60g/60h after common.sh): build_control_sim
# DEFINE builds out/host/control/DEFINE/sim, the simulator with driver/aerovblk_reset.c
# (the file that holds the test switches) compiled with -DDEFINE (a test switch
# restoring an old behaviour) and every other object as built by make, unless it is newer than all of those; sets CONTROL_SIM. Non-zero when
# the build fails.
build_control_sim() {
    local def=$1 dir=out/host/control/$1
    local objs
    objs=$(ls out/host/sim/*.o | grep -v '/sim_fake_miniport\.o$')
    CONTROL_SIM=$dir/sim
    if [ -x "$CONTROL_SIM" ] && [ -z "$(find driver out/host/sim out/host/libaerovblk.a -newer "$CONTROL_SIM" \( -name '*.[cho]' -o -name '*.a' \) | grep -v sim_fake_miniport | head -1)" ]; then
        return 0
    fi
    mkdir -p "$dir"
    gcc -std=gnu11 -g -O1 -Iinclude -Iinclude/wdk -Idriver -DAEROVBLK_HOST=1 -fsanitize=address,undefined \
        -fno-omit-frame-pointer "-D$def" -c driver/aerovblk_reset.c -o "$dir/aerovblk_reset.o" &&
    cp out/host/libaerovblk.a "$dir/lib.a" && ar d "$dir/lib.a" aerovblk_reset.o && ar r "$dir/lib.a" "$dir/aerovblk_reset.o" 2>/dev/null &&
    gcc $objs -Wl,-u,DriverEntry "$dir/lib.a" out/peloader/x64/sim_pe.o out/peloader/x64/libpeloader.a \
        -o "$dir/sim.tmp" -fsanitize=address,undefined -pthread && mv "$dir/sim.tmp" "$CONTROL_SIM"
}
