/*
 * sync_cmd.h — the shmstat tool's view of shmstat-bridge: where values
 * come from, the bridge's status in `info`, the cluster-wide value
 * (`get --global`) and the global reset (`reset --global`).
 */
#ifndef SHMSTAT_SYNC_CMD_H
#define SHMSTAT_SYNC_CMD_H

#include <stdbool.h>
#include <stdio.h>

#include "shmstat.h"

/* Append the bridge's status to `info`: table lines, or for JSON the
 * `,"bridge": {...}` member and the closing brace of the object. */
void sync_info(shmstat_t *h, FILE *f, bool json);

/* Print the cluster-wide value of `name` (or JSON); exit status. */
int sync_get_global(shmstat_t *h, const char *name, bool json);

/* Ask the bridge to reset the keys matching glob in Redis, wait for it
 * (bounded) and print how many; exit status. */
int sync_reset_global(shmstat_t *h, const char *glob);

#endif
