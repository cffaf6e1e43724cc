/*
 * The crash-dump port, pessimistic (issue 11 item 9, facts §7, §11.8).
 */
#include "sim.h"

bool sim_dump_config_saved = true;
bool sim_second_uncached_null = true;
