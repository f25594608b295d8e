/*
 * sync_cmd.c — the shmstat tool's bridge-related output: the `source` of
 * values, the bridge status in `info`, `get --global` and
 * `reset --global`. It reads the segment only (shm/sync.c); it never
 * talks to Redis.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "shmstat.h"
#include "shmstat_i.h"
#include "sync_cmd.h"
#include "tools_i.h"

#define RESET_WAIT_MS 10000

/* "redis" when the bridge is alive, connected and pushed within three
 * intervals (at least 2 s): the global values are then reconciled. The
 * library decides, so the tool and the bridge's endpoints agree. */
const char *tool_source(shmstat_t *h)
{
	return shmstat_source(h);
}

static const char *bridge_state(const shmstat_sync_status_t *st)
{
	if (st->bridge_pid == 0)
		return "never ran";
	if (!st->alive)
		return "not running";
	return st->connected ? "connected" : "disconnected";
}

static void ts_or_never(char *buf, size_t len, uint64_t ns)
{
	if (ns)
		iso_time(buf, len, ns);
	else
		snprintf(buf, len, "never");
}

void sync_info(shmstat_t *h, FILE *f, bool json)
{
	shmstat_sync_status_t st;
	char push[64], err[64], beat[64];
	int rc = shmstat_sync_status_read(h, &st);

	if (rc < 0) {
		if (json)
			fputs(",\n  \"bridge\": null\n}\n", f);
		else
			fprintf(f, "bridge:    status unreadable: %s\n",
				shmstat_errstr(h));
		return;
	}
	ts_or_never(push, sizeof(push), st.last_push_ns);
	ts_or_never(err, sizeof(err), st.last_error_ns);
	ts_or_never(beat, sizeof(beat), st.heartbeat_ns);
	const char *source = tool_source(h);
	if (!json) {
		fprintf(f, "bridge:    %s", bridge_state(&st));
		if (st.bridge_pid)
			fprintf(f, " (pid %d, Redis %s, every %" PRIu64 " ms)",
				st.bridge_pid, st.redis_addr, st.interval_ms);
		fprintf(f, "\nsource:    %s\n", source);
		if (!st.bridge_pid)
			return;
		fprintf(f, "push:      last %s; %" PRIu64 " ok, %" PRIu64
			   " failed; %" PRIu64 " pending, lag %" PRIu64
			   " ms\n",
			push, st.pushes_ok, st.pushes_failed, st.pending,
			st.lag_ms);
		fprintf(f, "sync:      source %s, sequence %" PRIu64
			   ", bookkeeping under '%s', heartbeat %s\n",
			st.source[0] ? st.source : "(none yet)", st.seq_acked,
			st.meta_prefix, beat);
		if (st.refused_keys)
			fprintf(f, "refused:   %" PRIu64 " key%s Redis refuses "
				   "(e.g. '%s'): their counts stay pending\n",
				st.refused_keys, st.refused_keys == 1 ? "" : "s",
				st.refused_key);
		if (st.reserved_names)
			fprintf(f, "reserved:  %" PRIu64 " name%s never pushed: "
				   "the key is under '%s' (e.g. '%s')\n",
				st.reserved_names,
				st.reserved_names == 1 ? "" : "s", st.meta_prefix,
				st.reserved_name);
		if (st.last_error[0])
			fprintf(f, "error:     %s: %s\n", err, st.last_error);
		return;
	}
	fprintf(f, ",\n  \"bridge\": {\"state\": \"%s\", \"pid\": %d, "
		   "\"alive\": %s, \"connected\": %s, \"source\": \"%s\",\n"
		   "    \"redis\": ",
		bridge_state(&st), st.bridge_pid, st.alive ? "true" : "false",
		st.connected ? "true" : "false", source);
	json_str(f, st.redis_addr, strlen(st.redis_addr));
	fprintf(f, ", \"interval_ms\": %" PRIu64 ", \"host_id\": \"%016" PRIx64
		   "\", \"source_id\": ",
		st.interval_ms, st.host_id);
	json_str(f, st.source, strlen(st.source));
	fprintf(f, ", \"refused_keys\": %" PRIu64 ", \"refused_key\": ",
		st.refused_keys);
	json_str(f, st.refused_key, strlen(st.refused_key));
	fprintf(f, ", \"reserved_names\": %" PRIu64 ", \"reserved_name\": ",
		st.reserved_names);
	json_str(f, st.reserved_name, strlen(st.reserved_name));
	fputs(",\n    \"last_push\": ", f);
	if (st.last_push_ns)
		fprintf(f, "\"%s\"", push);
	else
		fputs("null", f);
	fprintf(f, ", \"pushes_ok\": %" PRIu64 ", \"pushes_failed\": %" PRIu64
		   ", \"pending\": %" PRIu64 ", \"lag_ms\": %" PRIu64
		   ",\n    \"sequence\": %" PRIu64 ", \"last_error\": ",
		st.pushes_ok, st.pushes_failed, st.pending, st.lag_ms,
		st.seq_acked);
	if (st.last_error[0])
		json_str(f, st.last_error, strlen(st.last_error));
	else
		fputs("null", f);
	fputs(", \"last_error_time\": ", f);
	if (st.last_error_ns)
		fprintf(f, "\"%s\"", err);
	else
		fputs("null", f);
	fputs("}\n}\n", f);
}

int sync_get_global(shmstat_t *h, const char *name, bool json)
{
	shmstat_stat_t st;
	int rc = shmstat_stat_read(h, name, &st);

	if (rc < 0) {
		tool_err("%s", shmstat_errstr(h));
		return tool_status(rc);
	}
	if (st.global_ns == 0) {
		tool_err("'%s' has no cluster-wide value yet: no shmstat-bridge "
			 "has reconciled it",
			 name);
		return 1;
	}
	if (!json) {
		printf("%" PRId64 "\n", st.global);
		return 0;
	}
	char ts[64], at[64];
	iso_time(ts, sizeof(ts), shmstat__now_realtime_ns());
	iso_time(at, sizeof(at), st.global_ns);
	fputs("{\"name\": ", stdout);
	json_str(stdout, st.name, st.name_len);
	printf(", \"kind\": \"%s\", \"value\": %" PRId64
	       ", \"scope\": \"global\", \"reconciled\": \"%s\", "
	       "\"timestamp\": \"%s\", \"source\": \"%s\"}\n",
	       st.kind == SHMSTAT_KIND_GAUGE ? "gauge" : "counter", st.global,
	       at, ts, tool_source(h));
	return 0;
}

int sync_reset_global(shmstat_t *h, const char *glob)
{
	shmstat_sync_status_t st;
	uint64_t id, n = 0;
	int rc;

	if ((rc = shmstat_sync_status_read(h, &st)) < 0) {
		tool_err("%s", shmstat_errstr(h));
		return tool_status(rc);
	}
	if (!st.alive) {
		tool_err("reset --global: no shmstat-bridge is running for this "
			 "segment; start one (nothing was changed)");
		return TOOL_FAILED;
	}
	if ((rc = shmstat_sync_reset_request(h, glob, &id)) < 0) {
		tool_err("reset --global: %s", shmstat_errstr(h));
		return tool_status(rc);
	}
	rc = shmstat_sync_reset_wait(h, id, RESET_WAIT_MS, &n);
	if (rc == SHMSTAT_EBUSY) {
		tool_err("reset --global: the bridge has not run the reset "
			 "within %d s (Redis unreachable?); it stays queued and "
			 "runs when the bridge reconnects",
			 RESET_WAIT_MS / 1000);
		return TOOL_FAILED;
	}
	if (rc < 0) {
		tool_err("reset --global: %s", shmstat_errstr(h));
		return TOOL_FAILED;
	}
	printf("%" PRIu64 "\n", n);
	/* No key matched: 1, as a local reset that matched nothing. */
	return n == 0 ? TOOL_NOTFOUND : TOOL_OK;
}
