/*
 * segments.c — finding segments: `shmstat ls` (every shmstat segment of
 * the host with its owner, mode, size, counters, live workers and bridge
 * state), a "did you mean" for a name that does not exist, and a
 * permission error that names the segment, its path, owner and mode.
 *
 * Segments are the files /dev/shm/shmstat.<name> (shm_open's namespace on
 * Linux). Listing them attaches to each one only to read.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "shmstat_i.h"
#include "tools_i.h"

#define SHM_DIR "/dev/shm"
#define PREFIX "shmstat."

const char usage_ls[] =
	"usage: shmstat [-n NAME] ls [-j]\n"
	"\n"
	"List the host's shmstat segments (" SHM_DIR "/" PREFIX "NAME), sorted by\n"
	"name: owner, mode, size, counters used of the maximum, live workers,\n"
	"and the bridge (connected, disconnected, not running, never ran). A\n"
	"segment that cannot be opened shows why (permission denied, not a\n"
	"shmstat segment, ...). -n is ignored.\n"
	"  -j  JSON: [{\"name\", \"owner\", \"group\", \"mode\", \"size\", \"counters\",\n"
	"      \"max_counters\", \"workers\", \"bridge\", \"error\"}, ...]\n"
	"\n" TOOL_EXIT_HELP;

static void path_of(char *buf, size_t len, const char *seg)
{
	snprintf(buf, len, SHM_DIR "/" PREFIX "%s", seg);
}

static void owner_of(const struct stat *st, char *user, size_t ulen,
		     char *group, size_t glen)
{
	struct passwd *pw = getpwuid(st->st_uid);
	struct group *gr = getgrgid(st->st_gid);

	if (pw)
		snprintf(user, ulen, "%s", pw->pw_name);
	else
		snprintf(user, ulen, "%u", (unsigned)st->st_uid);
	if (gr)
		snprintf(group, glen, "%s", gr->gr_name);
	else
		snprintf(group, glen, "%u", (unsigned)st->st_gid);
}

/* Names of the host's segments, sorted; *n of them. */
static char **segment_names(size_t *n)
{
	DIR *d = opendir(SHM_DIR);
	char **v = NULL;
	size_t cap = 0;
	struct dirent *e;

	*n = 0;
	if (!d)
		return NULL;
	while ((e = readdir(d))) {
		if (strncmp(e->d_name, PREFIX, strlen(PREFIX)) != 0)
			continue;
		const char *name = e->d_name + strlen(PREFIX);
		if (shmstat_name_check(name) < 0)
			continue;
		if (*n == cap) {
			cap = cap ? 2 * cap : 16;
			char **nv = realloc(v, cap * sizeof(*v));
			if (!nv)
				break;
			v = nv;
		}
		if (!(v[*n] = strdup(name)))
			break;
		(*n)++;
	}
	closedir(d);
	for (size_t i = 1; i < *n; i++) /* insertion sort: a host has few */
		for (size_t j = i; j > 0 && strcmp(v[j - 1], v[j]) > 0; j--) {
			char *t = v[j];
			v[j] = v[j - 1];
			v[j - 1] = t;
		}
	return v;
}

static void names_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* Levenshtein distance of two names (at most SHMSTAT_NAME_MAX bytes:
 * segment names and counter names alike); SIZE_MAX for longer ones. */
size_t tool_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), row[SHMSTAT_NAME_MAX + 2];

	if (la > SHMSTAT_NAME_MAX || lb > SHMSTAT_NAME_MAX)
		return SIZE_MAX;
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t diag = row[0];
		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t up = row[j];
			size_t best = diag + (a[i - 1] != b[j - 1]);
			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[lb];
}

bool tool_perm_text(const char *seg, char *buf, size_t len)
{
	char path[128], user[64], group[64];
	struct stat st;

	path_of(path, sizeof(path), seg);
	if (stat(path, &st) != 0)
		return false;
	owner_of(&st, user, sizeof(user), group, sizeof(group));
	if (geteuid() == st.st_uid) { /* the owner's own bits deny it */
		snprintf(buf, len,
			 "segment '%s' (%s): permission denied: owned by you "
			 "(%s), mode %04o, which does not let its owner write "
			 "it: chmod u+rw %s",
			 seg, path, user, (unsigned)(st.st_mode & 07777), path);
		return true;
	}
	snprintf(buf, len,
		 "segment '%s' (%s): permission denied: owned by %s:%s, mode "
		 "%04o; run as %s, or create the segment with --mode 0660 (or "
		 "0640 to inspect it) and join group %s",
		 seg, path, user, group, (unsigned)(st.st_mode & 07777), user,
		 group);
	return true;
}

bool tool_unlink_perm_text(const char *seg, char *buf, size_t len)
{
	char path[128], user[64], group[64];
	struct stat st;

	path_of(path, sizeof(path), seg);
	if (stat(path, &st) != 0 || st.st_uid == geteuid())
		return false;
	owner_of(&st, user, sizeof(user), group, sizeof(group));
	/* /dev/shm is sticky: only the owner (or root) removes a name,
	 * whatever the mode and the groups say. */
	snprintf(buf, len,
		 "segment '%s' (%s) is owned by %s: only its owner or root can "
		 "remove it (/dev/shm is sticky)",
		 seg, path, user);
	return true;
}

void tool_open_error(const char *seg, int rc)
{
	char why[512];

	if (rc == SHMSTAT_EPERM && tool_perm_text(seg, why, sizeof(why))) {
		tool_err("%s", why);
		return;
	}
	tool_err("%s", shmstat_errstr(NULL));
	if (rc != SHMSTAT_ENOENT)
		return;
	size_t n, best = SIZE_MAX;
	char **names = segment_names(&n);
	const char *hint = NULL;
	for (size_t i = 0; i < n; i++) {
		size_t d = tool_distance(seg, names[i]);
		if (d < best) {
			best = d;
			hint = names[i];
		}
	}
	/* Close enough to be a typo: two edits, or a third of the name. */
	size_t limit = strlen(seg) / 3 > 2 ? strlen(seg) / 3 : 2;
	if (hint && best <= limit)
		fprintf(stderr, "shmstat: did you mean '%s'? ('shmstat ls' lists "
				"the segments)\n",
			hint);
	else if (n)
		fprintf(stderr, "shmstat: 'shmstat ls' lists the %zu segment%s "
				"of this host\n",
			n, n == 1 ? "" : "s");
	names_free(names, n);
}

int tool_attach(const char *seg, bool inspect, shmstat_t **h)
{
	/* An inspecting command attaches read-only: it works on a segment of
	 * another user that lets it read (a 0644 segment), and can never
	 * write to it. */
	shmstat_options_t o = { .flags = inspect ? SHMSTAT_O_RDONLY : 0 };
	int rc = shmstat_open(seg, &o, h);
	if (rc < 0) {
		tool_open_error(seg, rc);
		return tool_status(rc);
	}
	return 0;
}

struct ls_row {
	char name[SHMSTAT_SEGNAME_MAX + 1];
	char user[64], group[64];
	unsigned mode;
	uint64_t size;
	bool ok;
	uint32_t counters, max_counters, workers;
	const char *bridge;
	char error[256];
};

static void ls_read(const char *name, struct ls_row *r)
{
	char path[128];
	struct stat st;
	shmstat_t *h;

	memset(r, 0, sizeof(*r));
	snprintf(r->name, sizeof(r->name), "%s", name);
	path_of(path, sizeof(path), name);
	if (stat(path, &st) == 0) {
		owner_of(&st, r->user, sizeof(r->user), r->group,
			 sizeof(r->group));
		r->mode = (unsigned)(st.st_mode & 07777);
		r->size = (uint64_t)st.st_size;
	}
	r->bridge = "-";
	shmstat_options_t o = { .flags = SHMSTAT_O_RDONLY };
	int rc = shmstat_open(name, &o, &h);
	if (rc < 0) {
		snprintf(r->error, sizeof(r->error), "%s", shmstat_strerror(rc));
		return;
	}
	shmstat_info_t in;
	shmstat_sync_status_t ss;
	if ((rc = shmstat_info(h, &in)) < 0) {
		snprintf(r->error, sizeof(r->error), "%s", shmstat_strerror(rc));
		shmstat_close(&h);
		return;
	}
	r->ok = true;
	r->counters = in.counters_used;
	r->max_counters = in.max_counters;
	r->workers = in.workers_live;
	if (shmstat_sync_status_read(h, &ss) == 0)
		r->bridge = ss.bridge_pid == 0 ? "never ran"
			    : !ss.alive	       ? "not running"
			    : ss.connected     ? "connected"
					       : "disconnected";
	shmstat_close(&h);
}

int do_ls(const char *seg, int argc, char **argv)
{
	bool json = false;
	int c;

	(void)seg;
	while ((c = getopt(argc, argv, "j")) != -1) {
		if (c != 'j') {
			fputs(usage_ls, stderr);
			return TOOL_USAGE;
		}
		json = true;
	}
	if (optind != argc) {
		tool_err("ls: unexpected argument '%s'", argv[optind]);
		return TOOL_USAGE;
	}
	size_t n;
	char **names = segment_names(&n);
	if (json)
		fputs("[", stdout);
	else
		printf("%-24s %-16s %-5s %12s %15s %7s  %s\n", "NAME", "OWNER",
		       "MODE", "SIZE", "COUNTERS", "WORKERS", "BRIDGE");
	for (size_t i = 0; i < n; i++) {
		struct ls_row r;
		char own[130];
		ls_read(names[i], &r);
		snprintf(own, sizeof(own), "%s:%s", r.user, r.group);
		if (json) {
			fputs(i ? ",\n  {\"name\": " : "\n  {\"name\": ", stdout);
			json_str(stdout, r.name, strlen(r.name));
			fputs(", \"owner\": ", stdout);
			json_str(stdout, r.user, strlen(r.user));
			fputs(", \"group\": ", stdout);
			json_str(stdout, r.group, strlen(r.group));
			printf(", \"mode\": \"%04o\", \"size\": %" PRIu64, r.mode,
			       r.size);
			if (r.ok)
				printf(", \"counters\": %u, \"max_counters\": %u, "
				       "\"workers\": %u, \"bridge\": \"%s\", "
				       "\"error\": null}",
				       r.counters, r.max_counters, r.workers,
				       r.bridge);
			else {
				fputs(", \"counters\": null, \"max_counters\": null, "
				      "\"workers\": null, \"bridge\": null, "
				      "\"error\": ",
				      stdout);
				json_str(stdout, r.error, strlen(r.error));
				fputs("}", stdout);
			}
			continue;
		}
		if (r.ok) {
			char cnt[32];
			snprintf(cnt, sizeof(cnt), "%u/%u", r.counters,
				 r.max_counters);
			printf("%-24s %-16s %04o  %12" PRIu64 " %15s %7u  %s\n",
			       r.name, own, r.mode, r.size, cnt, r.workers,
			       r.bridge);
		} else {
			printf("%-24s %-16s %04o  %12" PRIu64 " %15s %7s  (%s)\n",
			       r.name, own, r.mode, r.size, "-", "-", r.error);
		}
	}
	if (json)
		fputs(n ? "\n]\n" : "]\n", stdout);
	names_free(names, n);
	return TOOL_OK;
}
