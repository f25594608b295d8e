/*
 * health.c — `shmstat health`: one verdict, one line saying why, an exit
 * status a monitor can act on (0 healthy, 1 degraded, 2 broken: the
 * scale of exitcodes.h), and with -j the JSON body the bridge's /health
 * serves.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "tools_i.h"

const char usage_health[] =
	"usage: shmstat [-n NAME] health [-j] [--no-bridge]\n"
	"\n"
	"Check the segment and say in one line whether all is well.\n"
	"  -j           JSON: {\"status\", \"timestamp\", \"segment\", \"reason\",\n"
	"               \"checks\": {\"segment\", \"bridge\", \"cache\", \"workers\",\n"
	"               \"directory\"}}\n"
	"  --no-bridge  do not require a running, connected bridge\n"
	"\n"
	"exit status: 0 healthy; 1 degraded (no bridge, bridge disconnected or\n"
	"not pushing, 1% or more of the cache's calls failed (a full cache that\n"
	"evicts is healthy), directory 90% full, every row held by a live\n"
	"process or one that found no free row in the last 10 minutes);\n"
	"2 broken (segment missing or invalid); 3 the output could not be\n"
	"written (this wins over the status); 64 usage error.\n";

int do_health(const char *seg, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "no-bridge", no_argument, NULL, 'B' },
		{ 0, 0, 0, 0 },
	};
	static const char *const words[] = { "healthy", "degraded", "broken" };
	unsigned flags = 0;
	bool json = false;
	int c;

	while ((c = getopt_long(argc, argv, "j", lo, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'B':
			flags |= SHMSTAT_HEALTH_NO_BRIDGE;
			break;
		default:
			fputs(usage_health, stderr);
			return TOOL_USAGE;
		}
	}
	if (optind != argc) {
		tool_err("health: unexpected argument '%s'", argv[optind]);
		return TOOL_USAGE;
	}

	shmstat_health_t hs = { .status = SHMSTAT_BROKEN };
	shmstat_t *h = NULL;
	/* Read-only: health never writes, and works on a segment of
	 * another user that lets us read it. */
	shmstat_options_t o = { .flags = SHMSTAT_O_RDONLY };
	int rc = shmstat_open(seg, &o, &h);
	char why[512];
	if (rc == SHMSTAT_EPERM && tool_perm_text(seg, why, sizeof(why))) {
		snprintf(hs.reason, sizeof(hs.reason), "%s", why);
		snprintf(hs.segment, sizeof(hs.segment), "%s",
			 shmstat_strerror(rc));
	} else if (rc < 0) {
		snprintf(hs.reason, sizeof(hs.reason), "segment: %s",
			 shmstat_errstr(NULL));
		snprintf(hs.segment, sizeof(hs.segment), "%s",
			 shmstat_strerror(rc));
	} else if ((rc = shmstat_health(h, flags, &hs)) < 0) {
		hs.status = SHMSTAT_BROKEN;
		snprintf(hs.reason, sizeof(hs.reason), "segment: %s",
			 shmstat_errstr(h));
		snprintf(hs.segment, sizeof(hs.segment), "%s",
			 shmstat_strerror(rc));
	}
	if (json)
		shmstat_export_health_json(h, &hs, stdout);
	else if (hs.status == SHMSTAT_HEALTHY)
		printf("healthy: segment '%s'%s\n", seg,
		       flags & SHMSTAT_HEALTH_NO_BRIDGE
			       ? ""
			       : ", bridge connected and pushing");
	else
		printf("%s: %s\n", words[hs.status], hs.reason);
	shmstat_close(&h);
	return hs.status;
}
