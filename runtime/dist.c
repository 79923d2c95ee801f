/* Ranks of an mpirun job (include/loom/dist.h): Open MPI when built with
 * LOOM_MPI, else one rank. MPI errors return (MPI_ERRORS_RETURN) and become
 * loom errors naming the call; a rank that dies makes mpirun end the job. */
#include "loom/dist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "loom/error.h"

enum { BUCKET = 1 << 20 }; /* floats per allreduce call and per tree message (4 MiB) */

int loom_dist_launched_ranks(void) {
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS", NULL};
    for (const char *const *v = vars; *v; v++) {
        const char *s = getenv(*v);
        if (s && atoi(s) > 0) return atoi(s);
    }
    return 1;
}

void loom_dist_part(const loom_dist *d, long n, long *lo, long *hi) {
    long r = loom_dist_rank(d), R = loom_dist_size(d);
    *lo = r * n / R;
    *hi = (r + 1) * n / R;
}

#ifndef LOOM_HAVE_MPI

struct loom_dist {
    int unused;
};

int loom_dist_available(void) { return 0; }

loom_dist *loom_dist_init(void) {
    int n = loom_dist_launched_ranks();
    if (n > 1) {
        loom_fail(LOOM_EUNSUPPORTED, "started by mpirun as one of %d ranks, but this loom was built without MPI: they "
                                     "would train %d separate models (build with cmake -DLOOM_MPI=ON; libopenmpi-dev)",
                  n, n);
        return NULL;
    }
    loom_dist *d = calloc(1, sizeof *d);
    if (!d) loom_fail(LOOM_ENOMEM, "out of memory");
    return d;
}
void loom_dist_free(loom_dist *d) { free(d); }
void loom_dist_abort(loom_dist *d, int status) {
    (void)d;
    exit(status);
}
int loom_dist_rank(const loom_dist *d) { return (void)d, 0; }
int loom_dist_size(const loom_dist *d) { return (void)d, 1; }
int loom_dist_local_size(const loom_dist *d) { return (void)d, 1; }
int loom_dist_bcast(loom_dist *d, void *buf, size_t bytes) { return (void)d, (void)buf, (void)bytes, LOOM_OK; }
int loom_dist_allreduce_f32(loom_dist *d, float *buf, size_t n) { return (void)d, (void)buf, (void)n, LOOM_OK; }
int loom_dist_tree_sum_f32(loom_dist *d, float *buf, size_t n) { return (void)d, (void)buf, (void)n, LOOM_OK; }
int loom_dist_allgather(loom_dist *d, const void *mine, size_t bytes, void *all) {
    (void)d;
    memmove(all, mine, bytes);
    return LOOM_OK;
}
int loom_dist_allgatherv_f32(loom_dist *d, const float *mine, int count, float *all, int *counts) {
    (void)d;
    memmove(all, mine, (size_t)count * sizeof *all);
    counts[0] = count;
    return LOOM_OK;
}
int loom_dist_barrier(loom_dist *d) { return (void)d, LOOM_OK; }
int loom_dist_threads_ok(const loom_dist *d) { return (void)d, 1; }
int loom_dist_allreduce_gentle_f32(loom_dist *d, float *buf, size_t n) { return (void)d, (void)buf, (void)n, LOOM_OK; }

#else

#include <mpi.h>

static int env_int(const char *name, int def) {
    const char *s = getenv(name);
    return s && atoi(s) > 0 ? atoi(s) : def;
}

struct loom_dist {
    int rank, size, local_size;
    int threads_ok; /* MPI_THREAD_SERIALIZED or better */
    float *tmp; /* BUCKET floats: a tree message */
};

int loom_dist_available(void) { return 1; }

/* An MPI call's failure as a loom error. */
static int mpi_fail(const loom_dist *d, const char *what, int rc) {
    char msg[MPI_MAX_ERROR_STRING] = "";
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    return loom_fail(LOOM_EIO, "MPI rank %d of %d: %s failed: %s (another rank may have stopped; mpirun names it)",
                     d ? d->rank : -1, d ? d->size : -1, what, msg);
}

loom_dist *loom_dist_init(void) {
    int inited = 0, provided = 0;
    MPI_Initialized(&inited);
    /* the thread pool never calls MPI: only the thread that made the trainer does */
    /* the trainer's communication thread calls MPI while the main thread does not (serialized) */
    if (!inited && MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS) {
        loom_fail(LOOM_EIO, "MPI_Init_thread failed: is this an mpirun job on a working Open MPI?");
        return NULL;
    }
    loom_dist *d = calloc(1, sizeof *d);
    if (d) d->tmp = malloc(BUCKET * sizeof *d->tmp);
    if (!d || !d->tmp) {
        free(d);
        loom_fail(LOOM_ENOMEM, "out of memory");
        return NULL;
    }
    if (inited) MPI_Query_thread(&provided);
    d->threads_ok = provided >= MPI_THREAD_SERIALIZED;
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &d->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &d->size);
    d->local_size = env_int("OMPI_COMM_WORLD_LOCAL_SIZE", env_int("MPI_LOCALNRANKS", 1));
    return d;
}

void loom_dist_free(loom_dist *d) {
    if (!d) return;
    free(d->tmp);
    free(d);
    int fin = 0;
    MPI_Finalized(&fin);
    if (!fin) MPI_Finalize();
}

void loom_dist_abort(loom_dist *d, int status) {
    (void)d;
    MPI_Abort(MPI_COMM_WORLD, status);
    exit(status);
}

int loom_dist_rank(const loom_dist *d) { return d ? d->rank : 0; }
int loom_dist_size(const loom_dist *d) { return d ? d->size : 1; }
int loom_dist_local_size(const loom_dist *d) { return d ? d->local_size : 1; }

int loom_dist_bcast(loom_dist *d, void *buf, size_t bytes) {
    if (!d || d->size == 1) return LOOM_OK;
    for (size_t at = 0; at < bytes; at += (size_t)BUCKET * 4) {
        size_t len = bytes - at < (size_t)BUCKET * 4 ? bytes - at : (size_t)BUCKET * 4;
        int rc = MPI_Bcast((char *)buf + at, (int)len, MPI_BYTE, 0, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) return mpi_fail(d, "MPI_Bcast", rc);
    }
    return LOOM_OK;
}

int loom_dist_allreduce_f32(loom_dist *d, float *buf, size_t n) {
    if (!d || d->size == 1) return LOOM_OK;
    for (size_t at = 0; at < n; at += BUCKET) {
        int len = (int)(n - at < BUCKET ? n - at : BUCKET);
        int rc = MPI_Allreduce(MPI_IN_PLACE, buf + at, len, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) return mpi_fail(d, "MPI_Allreduce", rc);
    }
    return LOOM_OK;
}

int loom_dist_tree_sum_f32(loom_dist *d, float *buf, size_t n) {
    if (!d || d->size == 1) return LOOM_OK;
    int r = d->rank, R = d->size;
    for (int k = 1; k < R; k *= 2) {
        if (r % (2 * k) == k) { /* hand this subtree's sum to rank r - k, and be done */
            for (size_t at = 0; at < n; at += BUCKET) {
                int len = (int)(n - at < BUCKET ? n - at : BUCKET);
                int rc = MPI_Send(buf + at, len, MPI_FLOAT, r - k, 7, MPI_COMM_WORLD);
                if (rc != MPI_SUCCESS) return mpi_fail(d, "MPI_Send", rc);
            }
            break;
        }
        if (r % (2 * k) == 0 && r + k < R)
            for (size_t at = 0; at < n; at += BUCKET) {
                int len = (int)(n - at < BUCKET ? n - at : BUCKET);
                int rc = MPI_Recv(d->tmp, len, MPI_FLOAT, r + k, 7, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
                if (rc != MPI_SUCCESS) return mpi_fail(d, "MPI_Recv", rc);
                float *b = buf + at;
                for (int i = 0; i < len; i++) b[i] += d->tmp[i];
            }
    }
    return loom_dist_bcast(d, buf, n * sizeof *buf);
}

int loom_dist_allgather(loom_dist *d, const void *mine, size_t bytes, void *all) {
    if (!d || d->size == 1) {
        memmove(all, mine, bytes);
        return LOOM_OK;
    }
    int rc = MPI_Allgather(mine, (int)bytes, MPI_BYTE, all, (int)bytes, MPI_BYTE, MPI_COMM_WORLD);
    return rc == MPI_SUCCESS ? LOOM_OK : mpi_fail(d, "MPI_Allgather", rc);
}

int loom_dist_allgatherv_f32(loom_dist *d, const float *mine, int count, float *all, int *counts) {
    if (!d || d->size == 1) {
        memmove(all, mine, (size_t)count * sizeof *all);
        counts[0] = count;
        return LOOM_OK;
    }
    int rc = MPI_Allgather(&count, 1, MPI_INT, counts, 1, MPI_INT, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) return mpi_fail(d, "MPI_Allgather", rc);
    int *displs = malloc((size_t)d->size * sizeof *displs);
    if (!displs) return loom_fail(LOOM_ENOMEM, "out of memory");
    for (int q = 0, at = 0; q < d->size; at += counts[q], q++) displs[q] = at;
    rc = MPI_Allgatherv(mine, count, MPI_FLOAT, all, counts, displs, MPI_FLOAT, MPI_COMM_WORLD);
    free(displs);
    return rc == MPI_SUCCESS ? LOOM_OK : mpi_fail(d, "MPI_Allgatherv", rc);
}

int loom_dist_threads_ok(const loom_dist *d) { return !d || d->threads_ok; }

int loom_dist_allreduce_gentle_f32(loom_dist *d, float *buf, size_t n) {
    if (!d || d->size == 1) return LOOM_OK;
    for (size_t at = 0; at < n; at += BUCKET) {
        int len = (int)(n - at < BUCKET ? n - at : BUCKET), done = 0;
        MPI_Request req;
        int rc = MPI_Iallreduce(MPI_IN_PLACE, buf + at, len, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &req);
        if (rc != MPI_SUCCESS) return mpi_fail(d, "MPI_Iallreduce", rc);
        while (!done) {
            rc = MPI_Test(&req, &done, MPI_STATUS_IGNORE);
            if (rc != MPI_SUCCESS) return mpi_fail(d, "MPI_Test", rc);
            if (!done) nanosleep(&(struct timespec){0, 100000}, NULL);
        }
    }
    return LOOM_OK;
}

int loom_dist_barrier(loom_dist *d) {
    if (!d || d->size == 1) return LOOM_OK;
    int rc = MPI_Barrier(MPI_COMM_WORLD);
    return rc == MPI_SUCCESS ? LOOM_OK : mpi_fail(d, "MPI_Barrier", rc);
}

#endif
