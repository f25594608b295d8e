// The public header compiles as C++ and its inline hot path works there.
#include "shmstat.h"

#include <cstdio>

int main()
{
	uint64_t cells[4] = {0, 0, 0, 0};
	// A row owned by this thread: the inline path, no library call.
	shmstat_row_ row = {cells, shmstat_thread_token_()};
	shmstat_counter_t c = {&row, 2, 0};
	shmstat_counter_add(c, 5);
	shmstat_counter_incr(c);
	static_assert(sizeof(shmstat_counter_t) == 16, "ABI");
	static_assert(sizeof(shmstat_histogram_t) == 16, "ABI");
	if (cells[2] != 6) {
		std::printf("1 passed, 1 failed\n");
		return 1;
	}
	std::printf("%s\n", shmstat_strerror(SHMSTAT_ENOTFOUND));
	return 0;
}
