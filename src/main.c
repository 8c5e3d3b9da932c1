/*
 * main.c - intersect-etl's entry point: everything is in the library (cli.c).
 */
#include <malloc.h>

#include "cli.h"

int main(int argc, char **argv)
{
#ifdef M_MMAP_THRESHOLD
	/* A page's buffers (its parsed answer, its COPY text) are large and
	 * short-lived, made on one thread and freed on another: each is mapped
	 * on its own and unmapped when freed, so that peak memory is what is
	 * held, not what per-thread arenas kept (glibc otherwise raises this
	 * threshold after the first such free); bufpool.h keeps a few of them
	 * mapped for the next page. */
	mallopt(M_MMAP_THRESHOLD, 256 * 1024);
#endif
	return cli_main(argc, argv);
}
