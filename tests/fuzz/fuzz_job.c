/*
 * fuzz_job.c - libFuzzer harness for the job-file parser: any bytes as a job
 * file must load or fail with a message, never crash, leak or hang.
 */
#include <stdint.h>
#include <stdlib.h>

#include "job.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct etl_error err;
	struct job *job = NULL;

	if (job_load_string((const char *)data, size, "fuzz.yaml", &job, &err) == 0)
		job_free(job);
	else if (err.msg[0] == '\0')
		abort(); /* every failure says why */
	return 0;
}
