/*
 * signals.h - SIGTERM and SIGINT during a run.
 *
 * They ask the run to stop: the handler only notes the signal, and the
 * fetching loop (schedule.c) stops issuing, lets the pages being loaded commit,
 * records the run `interrupted` and exits 143 or 130 (README "Exit
 * status"). SA_RESETHAND: a second signal ends the process at once.
 */
#ifndef INTERSECT_SIGNALS_H
#define INTERSECT_SIGNALS_H

#include <signal.h>

/* Catches SIGTERM and SIGINT from now on, the old actions kept in old. */
void signals_catch(struct sigaction old[2]);
/* Puts back the actions signals_catch() kept. */
void signals_restore(const struct sigaction old[2]);
/* The signal caught since signals_catch(), 0 if none. */
int signals_pending(void);

#endif
