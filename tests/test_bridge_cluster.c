/*
 * test_bridge_cluster.c — shmstat-bridge on a real Redis Cluster: six
 * redis-server processes on free loopback ports (cluster-enabled, node
 * timeout 1 s), made three masters with a replica each by `redis-cli
 * --cluster create`. Two segments (two sources) count into counters whose
 * keys spread over every master; their bridges are given the address of
 * one master only. Under load that master is killed with SIGKILL; its
 * replica is promoted; the same bridges (never restarted) find the new
 * map through the other nodes and every key is exact, in Redis and in
 * both segments' global values. A global reset over many slots then sets
 * the matching keys to 0 and counting goes on exactly; slots moved by
 * `redis-cli --cluster reshard` under load lose nothing; gauges sum over
 * both sources and a clean stop withdraws one's in every slot. The times
 * from the kill to the promotion and to every key exact are printed. And
 * the documented move from a standalone Redis (--partition-by-slot, then
 * redis-cli --cluster import) loses and doubles nothing.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "redisutil.h"
#include "testutil.h"

#define NODES 6
#define NCOUNTERS 120

struct fx {
	char dir[128];
	int port[NODES], bus[NODES];
	pid_t pid[NODES];
	int n;                /* nodes made */
	struct tu_seg a, b;
	char log[300];
	long long expect[NCOUNTERS]; /* what every key must come to */
};

static const shmstat_options_t small = {
	.size = 4u << 20, .max_counters = 256, .max_workers = 8,
};

static bool has(const redisReply *r, const char *s)
{
	return r && r->type == REDIS_REPLY_STRING && strstr(r->str, s);
}

/* Is the cluster whole, as node i sees it? */
static bool node_ok(struct fx *f, int i)
{
	redisReply *r = ru_tcp_cmd(f->port[i], "CLUSTER INFO");
	bool ok = has(r, "cluster_state:ok") &&
		  has(r, "cluster_slots_assigned:16384") &&
		  has(r, "cluster_slots_ok:16384");
	if (r)
		freeReplyObject(r);
	return ok;
}

/* A replica's link to its master is up (its first sync done), or the
 * node is a master. */
static bool link_up(struct fx *f, int i)
{
	redisReply *r = ru_tcp_cmd(f->port[i], "INFO replication");
	bool ok = has(r, "role:master") || has(r, "master_link_status:up");
	if (r)
		freeReplyObject(r);
	return ok;
}

static bool is_master(struct fx *f, int i)
{
	redisReply *r = ru_tcp_cmd(f->port[i], "ROLE");
	bool m = r && r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
		 r->element[0]->type == REDIS_REPLY_STRING &&
		 strcmp(r->element[0]->str, "master") == 0;
	if (r)
		freeReplyObject(r);
	return m;
}

/* The replica of the master on port mport: the node whose ROLE names it. */
static int replica_of(struct fx *f, int mport)
{
	for (int i = 0; i < NODES; i++) {
		redisReply *r = ru_tcp_cmd(f->port[i], "ROLE");
		bool y = r && r->type == REDIS_REPLY_ARRAY &&
			 r->elements >= 3 &&
			 r->element[2]->type == REDIS_REPLY_INTEGER &&
			 r->element[2]->integer == mport;
		if (r)
			freeReplyObject(r);
		if (y)
			return i;
	}
	return -1;
}

/* GET key on the cluster: asked of a live node, following one MOVED. */
static long long cget(struct fx *f, const char *key)
{
	for (int i = 0; i < NODES; i++) {
		if (!f->pid[i])
			continue;
		redisReply *r = ru_tcp_cmd(f->port[i], "GET %s", key);
		assert_non_null(r);
		if (r->type == REDIS_REPLY_ERROR &&
		    strncmp(r->str, "MOVED ", 6) == 0) {
			const char *c = strrchr(r->str, ':');
			assert_non_null(c);
			int port = atoi(c + 1);
			freeReplyObject(r);
			r = ru_tcp_cmd(port, "GET %s", key);
			assert_non_null(r);
		}
		long long v = LLONG_MIN;
		if (r->type == REDIS_REPLY_STRING)
			v = atoll(r->str);
		else
			assert_int_equal(r->type, REDIS_REPLY_NIL);
		freeReplyObject(r);
		return v;
	}
	fail_msg("no live node");
	return 0;
}

/* The port of the master serving key (CLUSTER KEYSLOT, CLUSTER SLOTS). */
static int master_of(struct fx *f, const char *key)
{
	int i = 0;
	while (!f->pid[i])
		i++;
	redisReply *r = ru_tcp_cmd(f->port[i], "CLUSTER KEYSLOT %s", key);
	assert_non_null(r);
	long long slot = r->integer;
	freeReplyObject(r);
	r = ru_tcp_cmd(f->port[i], "CLUSTER SLOTS");
	assert_non_null(r);
	int port = 0;
	for (size_t k = 0; k < r->elements; k++) {
		redisReply *e = r->element[k];
		if (e->element[0]->integer <= slot &&
		    slot <= e->element[1]->integer)
			port = (int)e->element[2]->element[1]->integer;
	}
	freeReplyObject(r);
	return port;
}

/* How many of the counters' keys the master on port serves. */
static int keys_on(struct fx *f, int port)
{
	int n = 0;

	for (int i = 0; i < NCOUNTERS; i++) {
		char name[16];
		snprintf(name, sizeof(name), "c%d", i);
		n += master_of(f, name) == port;
	}
	return n;
}

/* Start node i (again: the same ports and nodes file). */
static void node_start(struct fx *f, int i)
{
	char ps[16], bs[16], conf[256], log[256];

	snprintf(ps, sizeof(ps), "%d", f->port[i]);
	snprintf(bs, sizeof(bs), "%d", f->bus[i]);
	snprintf(conf, sizeof(conf), "%s/nodes-%d.conf", f->dir, f->port[i]);
	snprintf(log, sizeof(log), "%s/redis-%d.log", f->dir, f->port[i]);
	const char *argv[] = { "redis-server", "--port", ps, "--bind",
			       "127.0.0.1", "--cluster-enabled", "yes",
			       "--cluster-config-file", conf,
			       "--cluster-node-timeout", "1000",
			       "--cluster-port", bs,
			       "--cluster-replica-validity-factor", "0",
			       "--cluster-require-full-coverage", "no",
			       "--dir", f->dir, "--save", "", "--appendonly",
			       "no", NULL };
	f->pid[i] = ru_spawn(log, argv);
	assert_true(ru_wait_port(f->port[i], 5000));
}

/* A cluster of `nodes` redis-servers, `replicas` per master, made by
 * redis-cli --cluster create; the two segments. Slots whose master is
 * down are not served, the others are (require-full-coverage no). */
static struct fx *make_cluster(int nodes, int replicas)
{
	struct fx *f = calloc(1, sizeof(*f));
	char out[4096], cmd[1024];
	size_t n;

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/shmstat-cluster-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->log, sizeof(f->log), "%s/bridge.log", f->dir);
	f->n = nodes;
	n = (size_t)snprintf(cmd, sizeof(cmd),
			     "redis-cli --cluster create --cluster-replicas %d "
			     "--cluster-yes",
			     replicas);
	for (int i = 0; i < nodes; i++) {
		/* The cluster bus gets a free port too (its default, port +
		 * 10000, may be past 65535). */
		f->port[i] = ru_free_port();
		f->bus[i] = ru_free_port();
		node_start(f, i);
		n += (size_t)snprintf(cmd + n, sizeof(cmd) - n,
				      " 127.0.0.1:%d", f->port[i]);
	}
	int rc = tu_sh(out, sizeof(out), "%s", cmd);
	if (rc != 0)
		fail_msg("redis-cli --cluster create failed (%d): %s", rc, out);
	uint64_t deadline = ru_mono_ms() + 30000;
	for (int i = 0; i < nodes; i++)
		while (!node_ok(f, i) || !link_up(f, i)) {
			if (ru_mono_ms() > deadline)
				fail_msg("the cluster did not form within 30 s "
					 "(see %s)",
					 f->dir);
			ru_sleep_ms(50);
		}
	tu_seg_create(&f->a, "cla", &small);
	tu_seg_create(&f->b, "clb", &small);
	for (int i = 0; i < NCOUNTERS; i++) {
		char name[16];
		snprintf(name, sizeof(name), "c%d", i);
		assert_int_equal(shmstat_counter_add_by_name(f->a.h, name, 0), 0);
		assert_int_equal(shmstat_counter_add_by_name(f->b.h, name, 0), 0);
	}
	return f;
}

static int setup(void **state)
{
	*state = make_cluster(6, 1);
	return 0;
}

static int setup_no_replicas(void **state)
{
	*state = make_cluster(3, 0);
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char out[256];

	for (int i = 0; i < NODES; i++)
		if (f->pid[i])
			ru_kill(f->pid[i]);
	shmstat_close(&f->a.h);
	shmstat_unlink(f->a.name);
	shmstat_close(&f->b.h);
	shmstat_unlink(f->b.name);
	if (!getenv("KEEP"))
		tu_sh(out, sizeof(out), "rm -rf %s", f->dir);
	free(f);
	return 0;
}

static void bump(struct fx *f, unsigned round)
{
	char name[16];

	snprintf(name, sizeof(name), "c%u", round % NCOUNTERS);
	shmstat_t *h = (round / NCOUNTERS + round) % 3 ? f->a.h : f->b.h;
	assert_int_equal(shmstat_counter_add_by_name(h, name, 1 + round % 7),
			 0);
	f->expect[round % NCOUNTERS] += 1 + round % 7;
}

static int64_t global(shmstat_t *h, const char *name)
{
	shmstat_stat_t st;

	assert_int_equal(shmstat_stat_read(h, name, &st), 0);
	return st.global;
}

/* Every key is what both segments counted (since its last reset), and
 * both segments hold it as the global value. */
static void assert_exact(struct fx *f)
{
	for (int i = 0; i < NCOUNTERS; i++) {
		char name[16];
		snprintf(name, sizeof(name), "c%d", i);
		long long want = f->expect[i];
		long long got = cget(f, name);
		if (got != (long long)want)
			fail_msg("%s: %lld in the cluster, %lld counted", name,
				 got, (long long)want);
		assert_int_equal(global(f->a.h, name), want);
		assert_int_equal(global(f->b.h, name), want);
	}
}

static void synced(struct fx *f)
{
	/* A, then B, then A again: each has read back what the other
	 * pushed. */
	assert_true(ru_wait_synced(f->a.h, 20000));
	assert_true(ru_wait_synced(f->b.h, 20000));
	assert_true(ru_wait_synced(f->a.h, 20000));
}

static void a_cluster_push_is_exact_through_a_failover_and_a_reset(
	void **state)
{
	struct fx *f = *state;
	char url[64], url2[96], out[256];
	unsigned round = 0;

	int seed = -1;
	for (int i = 0; i < NODES && seed < 0; i++)
		if (is_master(f, i))
			seed = i;
	assert_true(seed >= 0);
	/* A is given the one master (after it is killed, it finds the
	 * cluster through the nodes it learnt); B a dead address first. */
	snprintf(url, sizeof(url), "redis://127.0.0.1:%d", f->port[seed]);
	snprintf(url2, sizeof(url2), "redis://127.0.0.1:%d,127.0.0.1:%d",
		 ru_free_port(), f->port[seed]);
	const char *opt[] = { "-i", "50ms", "--backoff-max", "200ms",
			      "--connect-timeout", "300ms",
			      "--command-timeout", "500ms" };
	/* A database other than 0 cannot work on a cluster: the daemon
	 * exits 1 at once, saying what to do. */
	char url3[96];
	snprintf(url3, sizeof(url3), "redis://127.0.0.1:%d/3", f->port[seed]);
	pid_t p3 = ru_bridge(f->dir, f->a.name, url3, f->log, NULL);
	assert_int_equal(tu_wait(p3, 15000), 1);
	assert_true(ru_file_has(f->log, "which has only database 0: drop "
					"'/3' from the URL"));

	pid_t pa = ru_bridge(f->dir, f->a.name, url, f->log, opt[0], opt[1],
			     opt[2], opt[3], opt[4], opt[5], opt[6], opt[7],
			     NULL);
	pid_t pb = ru_bridge(f->dir, f->b.name, url2, f->log, opt[0], opt[1],
			     opt[2], opt[3], opt[4], opt[5], opt[6], opt[7],
			     NULL);
	for (; round < 2000; round++)
		bump(f, round);
	synced(f);
	assert_true(ru_file_has(f->log, "connected to Redis Cluster"));
	assert_true(ru_file_has(f->log, "(3 masters;"));
	/* The counters' keys are on every master. */
	int on[3] = { 0 }, ports[3] = { 0 }, np = 0;
	for (int i = 0; i < NCOUNTERS; i++) {
		char name[16];
		snprintf(name, sizeof(name), "c%d", i);
		int p = master_of(f, name), k = 0;
		while (k < np && ports[k] != p)
			k++;
		if (k == np) {
			assert_true(np < 3);
			ports[np++] = p;
		}
		on[k]++;
	}
	assert_int_equal(np, 3);
	assert_exact(f);

	/* Under load: the master the bridges were given dies. */
	int rep = replica_of(f, f->port[seed]);
	assert_true(rep >= 0);
	uint64_t t0 = ru_mono_ms();
	ru_kill(f->pid[seed]);
	f->pid[seed] = 0;
	uint64_t deadline = t0 + 30000, t_promoted = 0;
	while (ru_mono_ms() < deadline) {
		bump(f, round++);
		if (!t_promoted && is_master(f, rep) && node_ok(f, rep))
			t_promoted = ru_mono_ms();
		if (t_promoted && ru_mono_ms() > t_promoted + 300)
			break;
		ru_sleep_ms(5);
	}
	assert_true(t_promoted != 0);
	for (unsigned k = 0; k < 1000; k++)
		bump(f, round++);
	synced(f);
	uint64_t t_sync = ru_mono_ms();
	assert_int_equal(tu_wait_nohang(pa), -1); /* the same bridges */
	assert_int_equal(tu_wait_nohang(pb), -1);
	assert_exact(f);
	/* What the bridges said meanwhile names the cause. */
	assert_true(ru_file_has(f->log, "cannot be reached (127.0.0.1:") ||
		    ru_file_has(f->log, "is served by no master") ||
		    ru_file_has(f->log, "(slots without a master"));
	printf("cluster failover: kill -9 of a master to its replica "
	       "promoted %llu ms, to every key exact %llu ms (%u increments "
	       "over %d counters on %d, %d, %d keys per master)\n",
	       (unsigned long long)(t_promoted - t0),
	       (unsigned long long)(t_sync - t0), round, NCOUNTERS, on[0],
	       on[1], on[2]);

	/* Under load: slots move from one master to another (redis-cli
	 * --cluster reshard: MIGRATE, ASK during it, MOVED after). */
	int from = -1, to = -1;
	for (int i = 0; i < NODES; i++)
		if (f->pid[i] && is_master(f, i)) {
			if (from < 0)
				from = i;
			else if (to < 0)
				to = i;
		}
	assert_true(from >= 0 && to >= 0);
	char fid[64], tid[64];
	redisReply *r = ru_tcp_cmd(f->port[from], "CLUSTER MYID");
	assert_non_null(r);
	snprintf(fid, sizeof(fid), "%s", r->str);
	freeReplyObject(r);
	r = ru_tcp_cmd(f->port[to], "CLUSTER MYID");
	assert_non_null(r);
	snprintf(tid, sizeof(tid), "%s", r->str);
	freeReplyObject(r);
	char node[32], rlog[300];
	snprintf(node, sizeof(node), "127.0.0.1:%d", f->port[from]);
	snprintf(rlog, sizeof(rlog), "%s/reshard.log", f->dir);
	const char *rs[] = { "redis-cli", "--cluster", "reshard", node,
			     "--cluster-from", fid, "--cluster-to", tid,
			     "--cluster-slots", "3000", "--cluster-yes", NULL };
	int on_from = keys_on(f, f->port[from]);
	assert_true(on_from > 0);
	pid_t rp = ru_spawn(rlog, rs);
	uint64_t t1 = ru_mono_ms();
	int st = -1;
	while ((st = tu_wait_nohang(rp)) == -1 && ru_mono_ms() < t1 + 60000) {
		bump(f, round++);
		ru_sleep_ms(2);
	}
	assert_int_equal(st, 0);
	for (unsigned k = 0; k < 1000; k++)
		bump(f, round++);
	synced(f);
	assert_exact(f);
	printf("cluster reshard: 3000 slots moved in %llu ms under load, "
	       "every key exact after it\n",
	       (unsigned long long)(ru_mono_ms() - t1));
	assert_true(keys_on(f, f->port[from]) < on_from);

	/* A global reset of c1, c1x (over many slots): those keys are 0,
	 * and counting goes on from there. */
	int rc = tu_tool(out, sizeof(out), "-n", f->a.name, "reset",
			 "--global", "c1*", NULL);
	assert_int_equal(rc, 0);
	int reset = 0;
	for (int i = 0; i < NCOUNTERS; i++) {
		char name[16];
		snprintf(name, sizeof(name), "c%d", i);
		if (name[1] == '1') {
			assert_int_equal(cget(f, name), 0);
			f->expect[i] = 0;
			reset++;
		}
	}
	assert_true(reset > 30);
	for (unsigned k = 0; k < 1000; k++)
		bump(f, round++);
	synced(f);
	assert_exact(f);

	/* Gauges over many slots: each key the sum of both sources'; B
	 * stops cleanly and its part is withdrawn in every slot. */
	enum { NG = 40 };
	for (int i = 0; i < NG; i++) {
		char name[16];
		shmstat_gauge_t ga, gb;
		snprintf(name, sizeof(name), "g%d", i);
		assert_int_equal(shmstat_gauge_open(f->a.h, name, &ga), 0);
		assert_int_equal(shmstat_gauge_open(f->b.h, name, &gb), 0);
		shmstat_gauge_set(ga, 1000 + i);
		shmstat_gauge_set(gb, -3 * i);
	}
	synced(f);
	for (int i = 0; i < NG; i++) {
		char name[16];
		snprintf(name, sizeof(name), "g%d", i);
		assert_int_equal(cget(f, name), 1000 + i - 3 * i);
	}
	assert_int_equal(ru_bridge_stop(pb), 0);
	for (int i = 0; i < NG; i++) {
		char name[16];
		snprintf(name, sizeof(name), "g%d", i);
		assert_int_equal(cget(f, name), 1000 + i);
	}
	assert_int_equal(ru_bridge_stop(pa), 0);
}

/* Several nodes in the URL are for a cluster only: a standalone Redis
 * given with another address is refused, saying why. */
static void several_nodes_of_a_standalone_redis_are_refused(void **state)
{
	struct ru_server r = { 0 };
	struct tu_seg a;
	char ps[16], url[96], log[300];

	(void)state;
	int port = ru_free_port();
	snprintf(ps, sizeof(ps), "%d", port);
	const char *extra[] = { "--port", ps, NULL };
	r.extra = extra;
	ru_start(&r);
	ru_path(&r, log, sizeof(log), "bridge.log");
	tu_seg_create(&a, "cln", &small);
	assert_int_equal(shmstat_counter_add_by_name(a.h, "c", 3), 0);
	snprintf(url, sizeof(url), "redis://127.0.0.1:%d,127.0.0.1:%d", port,
		 ru_free_port());
	pid_t p = ru_bridge(r.dir, a.name, url, log, "--once", NULL);
	assert_int_equal(tu_wait(p, 15000), 1);
	assert_true(ru_file_has(log, "names several nodes, but 127.0.0.1:"));
	assert_true(ru_file_has(log, "is not a Redis Cluster node"));
	assert_int_equal(ru_get(&r, "c"), LLONG_MIN);
	shmstat_close(&a.h);
	shmstat_unlink(a.name);
	ru_destroy(&r);
}

/* A master without a replica dies: the slots of the other masters go on
 * being pushed (exact), its slots' counts stay pending and the status
 * names it; it comes back empty and everything is exact again, with no
 * bridge restarted. */
static void a_dead_master_stops_only_its_own_slots(void **state)
{
	struct fx *f = *state;
	char url[64];

	int home = master_of(f, "{home}"), victim = -1;
	for (int i = 0; i < f->n && victim < 0; i++)
		if (f->port[i] != home)
			victim = i;
	assert_true(victim >= 0);
	snprintf(url, sizeof(url), "redis://127.0.0.1:%d", home);
	const char *opt[] = { "-i", "50ms", "--backoff-max", "200ms",
			      "--connect-timeout", "300ms",
			      "--command-timeout", "500ms" };
	pid_t pa = ru_bridge(f->dir, f->a.name, url, f->log, opt[0], opt[1],
			     opt[2], opt[3], opt[4], opt[5], opt[6], opt[7],
			     NULL);
	pid_t pb = ru_bridge(f->dir, f->b.name, url, f->log, opt[0], opt[1],
			     opt[2], opt[3], opt[4], opt[5], opt[6], opt[7],
			     NULL);
	unsigned round = 0;
	for (; round < 3 * NCOUNTERS; round++)
		bump(f, round);
	synced(f);
	assert_exact(f);

	bool on_victim[NCOUNTERS];
	int nv = 0;
	for (int i = 0; i < NCOUNTERS; i++) {
		char name[16];
		snprintf(name, sizeof(name), "c%d", i);
		on_victim[i] = master_of(f, name) == f->port[victim];
		nv += on_victim[i];
	}
	assert_true(nv > 0 && nv < NCOUNTERS);
	ru_kill(f->pid[victim]);
	f->pid[victim] = 0;
	for (unsigned k = 0; k < 3 * NCOUNTERS; k++)
		bump(f, round++);
	/* Every key of the live masters reaches Redis, while the dead one's
	 * cannot. */
	uint64_t deadline = ru_mono_ms() + 20000;
	int behind = NCOUNTERS;
	while (behind && ru_mono_ms() < deadline) {
		behind = 0;
		for (int i = 0; i < NCOUNTERS; i++) {
			char name[16];
			snprintf(name, sizeof(name), "c%d", i);
			if (!on_victim[i] && cget(f, name) != f->expect[i])
				behind++;
		}
		if (behind)
			ru_sleep_ms(20);
	}
	assert_int_equal(behind, 0);
	assert_true(ru_file_has(f->log, "cannot be reached (127.0.0.1:"));
	shmstat_sync_status_t st;
	assert_int_equal(shmstat_sync_status_read(f->a.h, &st), 0);
	assert_true(st.pending > 0);

	/* It comes back empty (no persistence): its slots are pushed whole
	 * again. */
	node_start(f, victim);
	synced(f);
	assert_int_equal(tu_wait_nohang(pa), -1);
	assert_int_equal(tu_wait_nohang(pb), -1);
	assert_exact(f);
	assert_int_equal(ru_bridge_stop(pa), 0);
	assert_int_equal(ru_bridge_stop(pb), 0);
}

/* The documented way to a cluster: pushed to a standalone Redis with
 * --partition-by-slot, its keys moved into the cluster with redis-cli
 * --cluster import, the same segment's bridge then pushes to the cluster:
 * nothing lost, nothing counted twice. */
static void a_per_slot_standalone_redis_moves_into_a_cluster(void **state)
{
	struct fx *f = *state;
	struct ru_server r = { 0 };
	char ps[16], url[64], cmd[400], out[256];

	int port = ru_free_port();
	snprintf(ps, sizeof(ps), "%d", port);
	const char *extra[] = { "--port", ps, NULL };
	r.extra = extra;
	ru_start(&r);
	for (unsigned i = 0; i < 3 * NCOUNTERS; i++)
		bump(f, i);
	snprintf(url, sizeof(url), "redis://127.0.0.1:%d", port);
	pid_t p = ru_bridge(f->dir, f->a.name, url, f->log, "--once",
			    "--partition-by-slot", NULL);
	assert_int_equal(tu_wait(p, 15000), 0);
	p = ru_bridge(f->dir, f->b.name, url, f->log, "--once",
		      "--partition-by-slot", NULL);
	assert_int_equal(tu_wait(p, 15000), 0);
	snprintf(cmd, sizeof(cmd),
		 "redis-cli --cluster import 127.0.0.1:%d --cluster-from "
		 "127.0.0.1:%d --cluster-copy >%s/import.log 2>&1",
		 f->port[0], port, f->dir);
	int rc = tu_sh(out, sizeof(out), "%s", cmd);
	if (rc != 0)
		fail_msg("%s failed (%d)", cmd, rc);
	ru_destroy(&r);
	for (unsigned i = 0; i < 2 * NCOUNTERS; i++)
		bump(f, 7 + i);
	snprintf(url, sizeof(url), "redis://127.0.0.1:%d", f->port[0]);
	for (int k = 0; k < 2; k++) {
		p = ru_bridge(f->dir, k ? f->b.name : f->a.name, url, f->log,
			      "--once", NULL);
		assert_int_equal(tu_wait(p, 15000), 0);
	}
	p = ru_bridge(f->dir, f->a.name, url, f->log, "--once", NULL);
	assert_int_equal(tu_wait(p, 15000), 0);
	assert_exact(f);
}

/* A cluster node that serves no slot yet (the cluster not formed): the
 * bridge says so and what to do, writes nothing, and tries again. */
static void a_cluster_not_formed_yet_is_named(void **state)
{
	struct ru_server r = { 0 };
	struct tu_seg a;
	char ps[16], bs[16], url[64], log[300];

	(void)state;
	int port = ru_free_port();
	snprintf(ps, sizeof(ps), "%d", port);
	snprintf(bs, sizeof(bs), "%d", ru_free_port());
	/* The bus port given: port + 10000 may be past 65535. */
	const char *extra[] = { "--port", ps, "--cluster-enabled", "yes",
				"--cluster-port", bs, NULL };
	r.extra = extra;
	ru_start(&r);
	ru_path(&r, log, sizeof(log), "bridge.log");
	tu_seg_create(&a, "clf", &small);
	assert_int_equal(shmstat_counter_add_by_name(a.h, "c", 3), 0);
	snprintf(url, sizeof(url), "redis://127.0.0.1:%d", port);
	pid_t p = ru_bridge(r.dir, a.name, url, log, "--once", NULL);
	assert_int_equal(tu_wait(p, 15000), 5);
	assert_true(ru_file_has(log, "serves no hash slot yet (not formed: "
				     "redis-cli --cluster create"));
	assert_false(ru_file_has(log, "connected to Redis Cluster"));
	redisReply *rep = ru_tcp_cmd(port, "DBSIZE");
	assert_non_null(rep);
	assert_int_equal(rep->integer, 0);
	freeReplyObject(rep);
	shmstat_close(&a.h);
	shmstat_unlink(a.name);
	ru_destroy(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			a_per_slot_standalone_redis_moves_into_a_cluster, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			a_dead_master_stops_only_its_own_slots,
			setup_no_replicas, teardown),
		cmocka_unit_test(several_nodes_of_a_standalone_redis_are_refused),
		cmocka_unit_test(a_cluster_not_formed_yet_is_named),
		cmocka_unit_test_setup_teardown(
			a_cluster_push_is_exact_through_a_failover_and_a_reset,
			setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
