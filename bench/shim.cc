// shim.cc — the only C++ in the project: hands C benchmark bodies to
// Google Benchmark and provides main().
#include <benchmark/benchmark.h>

#include "shim.h"

struct shim_state {
	benchmark::State *s;
};

extern "C" void shim_register(const char *name, shim_fn fn)
{
	benchmark::RegisterBenchmark(name, [fn](benchmark::State &s) {
		shim_state st{&s};
		fn(&st);
	});
}

extern "C" int shim_run_batch(shim_state_t *st, int64_t n)
{
	return st->s->KeepRunningBatch(n) ? 1 : 0;
}

extern "C" void shim_set_items(shim_state_t *st, int64_t items)
{
	st->s->SetItemsProcessed(items);
}

extern "C" void shim_counter(shim_state_t *st, const char *name, double v)
{
	st->s->counters[name] = v;
}

extern "C" void shim_skip(shim_state_t *st, const char *why)
{
	st->s->SkipWithError(why);
}

extern "C" void shim_pause_timing(shim_state_t *st)
{
	st->s->PauseTiming();
}

extern "C" void shim_resume_timing(shim_state_t *st)
{
	st->s->ResumeTiming();
}

extern "C" int64_t shim_iterations(const shim_state_t *st)
{
	return static_cast<int64_t>(st->s->iterations());
}

BENCHMARK_MAIN();
