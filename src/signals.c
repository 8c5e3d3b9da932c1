/*
 * signals.c - SIGTERM and SIGINT noted, not acted on. See signals.h.
 */
#include "signals.h"

#include <string.h>

static volatile sig_atomic_t caught;

static void on_signal(int sig)
{
	caught = sig;
}

void signals_catch(struct sigaction old[2])
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sa.sa_flags = SA_RESETHAND | SA_RESTART; /* libpq and curl retry on EINTR */
	sigemptyset(&sa.sa_mask);
	caught = 0;
	sigaction(SIGTERM, &sa, &old[0]);
	sigaction(SIGINT, &sa, &old[1]);
}

void signals_restore(const struct sigaction old[2])
{
	sigaction(SIGTERM, &old[0], NULL);
	sigaction(SIGINT, &old[1], NULL);
}

int signals_pending(void)
{
	return caught;
}
