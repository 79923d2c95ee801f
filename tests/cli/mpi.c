/* loom train under mpirun (a LOOM_MPI build), on this one machine:
 *   - deterministic mode: 2 ranks x 1 thread, 1 rank x 2 threads and 1 rank
 *     x 1 thread give bit-identical weights for the same global batch (and
 *     4 ranks x 1 thread with a batch-norm model);
 *   - a run stopped after epoch 1 and resumed under mpirun ends bit for bit
 *     where the uninterrupted one does, and so does one interrupted mid-epoch
 *     by SIGINT (mpirun passes it to every rank; they stop at the same step);
 *   - fast mode (MPI_Allreduce) reaches the accuracy of the same run without
 *     MPI;
 *   - 3 ranks in deterministic mode (4 shards) are refused with the reason,
 *     and --shards 6 over 3 ranks equals 6 shards on 2 threads;
 *   - ranks started with different options are refused before training;
 *   - an unreadable image mid-epoch ends the job (no rank waits for ever);
 *   - a rank whose model drifts from rank 0's (LOOM_TEST_DIVERGE) stops the
 *     job with a message naming it;
 *   - a rank killed mid-run ends the job (mpirun names it), and the last
 *     checkpoint resumes under mpirun.
 * Given a build without MPI instead (second argument "nompi"), it checks that
 * such a loom refuses to be one of several ranks.
 *
 *   test_mpi path/to/loom path/to/mpirun [nompi] */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "util.h"
#include "same_weights.h"
#include "loom/loom.h"

static const char *loom_bin, *mpirun;
static char tmp[256], data[300], out[300];

/* Run argv (NULL-terminated) with output to out; returns its exit status. pid_out: don't wait, give the pid. */
static int run(char *const *argv, pid_t *pid_out) {
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) dup2(fd, 1), dup2(fd, 2);
        execv(argv[0], argv);
        _exit(127);
    }
    if (pid_out) {
        *pid_out = pid;
        return 0;
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static char *output(void) {
    size_t n;
    char *s = (char *)t_read_file(out, &n);
    return s ? s : calloc(1, 1);
}

/* loom train with the common settings and extra arguments, under mpirun -np ranks (0: without mpirun). */
static int train(int ranks, const char *ckdir, const char *const *extra, pid_t *pid) {
    char np[16], *argv[64];
    int k = 0;
    snprintf(np, sizeof np, "%d", ranks);
    if (ranks > 0) {
        argv[k++] = (char *)mpirun, argv[k++] = "--oversubscribe", argv[k++] = "-np", argv[k++] = np;
    }
    argv[k++] = (char *)loom_bin, argv[k++] = "train";
    const char *common[] = {"--data", data, "--batch", "32", "--seed", "3", "--checkpoint", ckdir, "--overwrite",
                            "--quiet", NULL};
    int resume = 0;
    for (const char *const *e = extra; *e; e++) resume |= !strcmp(*e, "--resume");
    for (const char *const *c = common; *c && !resume; c++) argv[k++] = (char *)*c;
    for (const char *const *e = extra; *e; e++) argv[k++] = (char *)*e;
    argv[k] = NULL;
    return run(argv, pid);
}

/* The final accuracy a run printed, or -1. */
static double final_accuracy(void) {
    char *s = output(), *p = strstr(s, "final validation accuracy: ");
    double a = p ? atof(p + strlen("final validation accuracy: ")) : -1;
    free(s);
    return a;
}

static const char *ck(const char *name) { return t_keep_path(tmp, name); }

/* A loom process (a rank, not mpirun) whose command line names dir. */
static pid_t find_rank(const char *dir, pid_t launcher) {
    DIR *d = opendir("/proc");
    pid_t found = -1;
    for (struct dirent *e; d && found < 0 && (e = readdir(d)) != NULL;) {
        pid_t p = (pid_t)atoi(e->d_name);
        if (p <= 0 || p == launcher) continue;
        char path[64], cmd[4096];
        snprintf(path, sizeof path, "/proc/%d/cmdline", (int)p);
        FILE *f = fopen(path, "rb");
        size_t n = f ? fread(cmd, 1, sizeof cmd - 1, f) : 0;
        if (f) fclose(f);
        cmd[n] = 0;
        for (size_t i = 0; i < n; i++) /* arguments are NUL-separated */
            if (!cmd[i]) cmd[i] = ' ';
        if (strstr(cmd, dir) && strstr(cmd, "train") && !strstr(cmd, "mpirun")) found = p;
    }
    if (d) closedir(d);
    return found;
}

/* Whether the runs in checkpoint folders a and b ended with the same weights. */
static int same_runs(const char *a, const char *b) {
    char pa[512];
    snprintf(pa, sizeof pa, "%s/last.safetensors", ck(a));
    return t_same_weights(pa, t_path(ck(b), "last.safetensors"));
}

/* A run on `ranks` ranks (checkpoint tag_r) and one without mpirun (tag_1), each checked, then compared. */
static void ranks_match_one(int ranks, const char *tag_r, const char *const *args_r, const char *tag_1,
                            const char *const *args_1, const char *what_r, const char *what_1, const char *same) {
    CHECK(train(ranks, ck(tag_r), args_r, NULL) == 0, "%s", what_r);
    CHECK(train(0, ck(tag_1), args_1, NULL) == 0, "%s", what_1);
    CHECK(same_runs(tag_r, tag_1), "%s", same);
}

static double t_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: test_mpi path/to/loom path/to/mpirun [nompi]\n");
        return 2;
    }
    loom_bin = argv[1], mpirun = argv[2];
    if (access(mpirun, X_OK)) TEST_SKIP("no mpirun at %s (apt-get install openmpi-bin)", mpirun);
    if (geteuid() == 0) { /* Open MPI refuses root without these */
        setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
        setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
    }
    if (!t_mkdtemp(tmp, sizeof tmp, "mpi")) return 2;
    snprintf(data, sizeof data, "%s/d/train.csv", tmp);
    snprintf(out, sizeof out, "%s/out", tmp);
    char dd[300];
    snprintf(dd, sizeof dd, "%s/d", tmp);
    char *mk[] = {(char *)loom_bin, "make-csv", "--out", dd, "--train", "600", "--test", "10", NULL};
    if (run(mk, NULL) != 0) {
        fprintf(stderr, "cannot make the data\n");
        return 2;
    }
    if (argc > 3 && !strcmp(argv[3], "nompi")) {
        const char *e[] = {"--epochs", "1", NULL};
        int rc = train(2, ck("n"), e, NULL);
        char *s = output();
        CHECK(rc != 0 && strstr(s, "built without MPI"), "a loom without MPI as one of 2 ranks refuses (exit %d): %s",
              rc, s);
        CHECK(access(t_path(ck("n"), "last.safetensors"), F_OK) != 0, "and writes no checkpoint");
        free(s);
        t_rm_tree(tmp);
        TEST_END();
    }

    /* deterministic: 2 ranks x 1 thread = 1 x 2 = 1 x 1 */
    const char *det1[] = {"--epochs", "2", "--deterministic", "--threads", "1", NULL};
    const char *det2[] = {"--epochs", "2", "--deterministic", "--threads", "2", NULL};
    double t0 = t_now();
    int rc = train(2, ck("r2t1"), det1, NULL);
    double t_r2 = t_now() - t0;
    CHECK(rc == 0, "2 ranks x 1 thread: exit %d", rc);
    double acc_mpi = final_accuracy();
    t0 = t_now();
    rc = train(0, ck("r1t2"), det2, NULL);
    double t_t2 = t_now() - t0;
    CHECK(rc == 0, "1 rank x 2 threads: exit %d", rc);
    double acc_one = final_accuracy();
    CHECK(train(0, ck("r1t1"), det1, NULL) == 0, "1 rank x 1 thread");
    CHECK(same_runs("r2t1", "r1t2"),
          "deterministic: 2 ranks x 1 thread and 1 rank x 2 threads give bit-identical weights");
    CHECK(same_runs("r2t1", "r1t1"),
          "deterministic: 2 ranks x 1 thread and 1 rank x 1 thread give bit-identical weights");
    CHECK(acc_mpi >= 0 && acc_mpi == acc_one, "the same accuracy through MPI (%.2f%%) as without (%.2f%%)", acc_mpi,
          acc_one);
    printf("deterministic, lenet5, 2 epochs: 2 ranks x 1 thread %.2f%% (%.2fs), 1 rank x 2 threads %.2f%% (%.2fs): "
           "weights bit-identical\n", acc_mpi, t_r2, acc_one, t_t2);

    /* with batch norm, 4 ranks of 1 shard each */
    const char *bn4[] = {"--epochs", "1", "--deterministic", "--threads", "1", "--model", "resnet", NULL};
    const char *bn1[] = {"--epochs", "1", "--deterministic", "--threads", "2", "--model", "resnet", NULL};
    ranks_match_one(4, "bn4", bn4, "bn1", bn1, "resnet, 4 ranks", "resnet, 1 rank",
                    "resnet (batch norm), deterministic: 4 ranks and 1 rank give bit-identical weights and statistics");

    /* resume under mpirun: after epoch 1, and from a SIGINT mid-epoch */
    const char *stop1[] = {"--epochs", "2", "--deterministic", "--threads", "1", "--stop-after", "1", NULL};
    CHECK(train(2, ck("rs"), stop1, NULL) == 0, "2 ranks, stopped after epoch 1");
    char last[400];
    snprintf(last, sizeof last, "%s/last.safetensors", ck("rs"));
    const char *res[] = {"--resume", last, "--quiet", NULL};
    CHECK(train(2, ck("rs"), res, NULL) == 0, "2 ranks resume");
    CHECK(t_same_weights(last, t_path(ck("r2t1"), "last.safetensors")),
          "resumed under mpirun after epoch 1: bit-identical to the uninterrupted run");
    const char *longer[] = {"--epochs", "30", "--deterministic", "--threads", "1", NULL};
    pid_t pid;
    train(2, ck("si"), longer, &pid);
    snprintf(last, sizeof last, "%s/last.safetensors", ck("si"));
    for (int w = 0; w < 300 && access(last, F_OK); w++) usleep(20000); /* epoch 1 saved: mid-run now */
    usleep(150000);
    kill(pid, SIGINT);
    int st = 0;
    waitpid(pid, &st, 0);
    char *s = output();
    int interrupted = strstr(s, "interrupted in epoch") != NULL;
    CHECK(interrupted, "SIGINT to mpirun: rank 0 saves and says so: %s", s);
    free(s);
    if (interrupted) {
        const char *res2[] = {"--resume", last, "--quiet", NULL};
        CHECK(train(2, ck("si"), res2, NULL) == 0, "2 ranks resume the interrupted run");
        CHECK(train(0, ck("si1"), longer, NULL) == 0, "the same run uninterrupted, 1 rank");
        CHECK(t_same_weights(last, t_path(ck("si1"), "last.safetensors")),
              "interrupted by SIGINT under mpirun and resumed: bit-identical to the uninterrupted run");
    }

    /* a rank killed mid-run: mpirun ends the job and says which rank; the last checkpoint resumes */
    train(2, ck("rk"), longer, &pid);
    snprintf(last, sizeof last, "%s/last.safetensors", ck("rk"));
    for (int w = 0; w < 300 && access(last, F_OK); w++) usleep(20000);
    pid_t victim = find_rank(ck("rk"), pid);
    CHECK(victim > 0, "a rank's process is found");
    if (victim > 0) kill(victim, SIGKILL);
    int ended = 0;
    for (int w = 0; w < 600 && !ended; w++) { /* up to 30 s */
        ended = waitpid(pid, &st, WNOHANG) == pid;
        if (!ended) usleep(50000);
    }
    if (!ended) kill(pid, SIGKILL), waitpid(pid, &st, 0);
    s = output();
    CHECK(ended && !(WIFEXITED(st) && WEXITSTATUS(st) == 0) && strstr(s, "exited on signal 9"),
          "a rank killed: the job ends (in %s) and mpirun names it: %s", ended ? "time" : "no time", s);
    free(s);
    const char *res3[] = {"--resume", last, "--quiet", NULL};
    CHECK(train(2, ck("rk"), res3, NULL) == 0, "and its last checkpoint resumes under mpirun");

    /* fast mode */
    const char *fast1[] = {"--epochs", "3", "--threads", "1", NULL};
    const char *fast2[] = {"--epochs", "3", "--threads", "2", NULL};
    CHECK(train(2, ck("f2"), fast1, NULL) == 0, "fast mode, 2 ranks");
    double fa = final_accuracy();
    CHECK(train(0, ck("f1"), fast2, NULL) == 0, "fast mode, 1 rank");
    double fb = final_accuracy();
    CHECK(fa >= 0 && fb >= 0 && fa > fb - 3 && fa < fb + 3,
          "fast mode: 2 ranks reach %.2f%%, 1 rank x 2 threads %.2f%% (within 3 points)", fa, fb);
    setenv("LOOM_OVERLAP", "0", 1); /* the allreduce after backward instead of during it */
    CHECK(train(2, ck("f0"), fast1, NULL) == 0, "fast mode, 2 ranks, no overlap");
    unsetenv("LOOM_OVERLAP");
    double fc = final_accuracy();
    CHECK(fc >= 0 && fc > fb - 3 && fc < fb + 3, "fast mode without overlap: %.2f%% (1 rank: %.2f%%)", fc, fb);
    printf("fast mode, lenet5, 3 epochs: 2 ranks %.2f%% (gradients sent during backward), %.2f%% (after it), 1 rank "
           "x 2 threads %.2f%%\n", fa, fc, fb);
    /* 2 ranks x 2 threads, clipping: the norm of the whole batch's gradient, after the ranks' sum */
    const char *clip2[] = {"--epochs", "3", "--threads", "2", "--clip", "0.5", NULL};
    const char *clip1[] = {"--epochs", "3", "--threads", "2", "--clip", "0.5", NULL};
    CHECK(train(2, ck("c2"), clip2, NULL) == 0, "2 ranks x 2 threads with --clip");
    double ca = final_accuracy();
    CHECK(train(0, ck("c1"), clip1, NULL) == 0, "1 rank x 2 threads with --clip");
    double cb = final_accuracy();
    CHECK(ca >= 0 && cb >= 0 && ca > cb - 5 && ca < cb + 5, "--clip 0.5: 2 ranks x 2 threads %.2f%%, 1 rank %.2f%%", ca,
          cb);

    /* refusals */
    rc = train(3, ck("r3"), det1, NULL);
    s = output();
    CHECK(rc == 2 && strstr(s, "power of two per rank"), "3 ranks, 4 deterministic shards: refused (exit %d): %s", rc, s);
    free(s);
    /* ... but 6 shards split over 3 ranks as 2 each, the same as 6 shards on 2 threads */
    const char *six3[] = {"--epochs", "1", "--deterministic", "--threads", "1", "--shards", "6", NULL};
    const char *six1[] = {"--epochs", "1", "--deterministic", "--threads", "2", "--shards", "6", NULL};
    ranks_match_one(3, "s3", six3, "s1", six1, "3 ranks, --shards 6", "1 rank, --shards 6",
                    "--shards 6: 3 ranks x 1 thread and 1 rank x 2 threads give bit-identical weights");
    /* ranks started with different options: refused before training */
    {
        char *mp[] = {(char *)mpirun, "--oversubscribe", "-np", "1", (char *)loom_bin, "train", "--data", data, "--seed",
                      "3", "--quiet", ":", "-np", "1", (char *)loom_bin, "train", "--data", data, "--seed", "4",
                      "--quiet", NULL};
        rc = run(mp, NULL);
        s = output();
        CHECK(rc != 0 && strstr(s, "rank 1 of 2 differs from rank 0 in its options"),
              "ranks with different options are refused (exit %d): %s", rc, s);
        free(s);
    }
    /* an unreadable image in the middle of an epoch: every rank stops, no rank waits for ever */
    {
        char folder[400], *mf[] = {(char *)loom_bin, "make-folder", "--out", folder, "--train", "30", "--test", "5",
                                   "--size", "24", NULL};
        snprintf(folder, sizeof folder, "%s/scenes", tmp);
        CHECK(run(mf, NULL) == 0, "make-folder");
        char bad[500];
        snprintf(bad, sizeof bad, "%s/seg_train/seg_train/forest/17.jpg", folder);
        size_t n;
        unsigned char *jpg = t_read_file(bad, &n);
        if (jpg && n > 200) t_write_file(bad, jpg, 200); /* truncated */
        free(jpg);
        char *tr[] = {(char *)mpirun, "--oversubscribe", "-np", "2", (char *)loom_bin, "train", "--data", folder,
                      "--epochs", "1", "--quiet", "--threads", "1", NULL};
        pid_t p;
        run(tr, &p);
        int ended = 0;
        for (int w = 0; w < 1200 && !ended; w++) { /* 60 s */
            ended = waitpid(p, &st, WNOHANG) == p;
            if (!ended) usleep(50000);
        }
        if (!ended) kill(p, SIGKILL), waitpid(p, &st, 0);
        s = output();
        CHECK(ended && !(WIFEXITED(st) && WEXITSTATUS(st) == 0) && strstr(s, "17.jpg") && strstr(s, "truncated"),
              "a bad image mid-epoch under mpirun: the job ends %s, naming the file: %s", ended ? "in time" : "NOT in time",
              s);
        free(s);
    }
    setenv("LOOM_TEST_DIVERGE", "1", 1);
    rc = train(2, ck("dv"), det1, NULL);
    unsetenv("LOOM_TEST_DIVERGE");
    s = output();
    CHECK(rc != 0 && strstr(s, "rank 1 differs from rank 0"), "a drifting rank stops the job (exit %d): %s", rc, s);
    free(s);
    if (!t_fail_) t_rm_tree(tmp);
    else fprintf(stderr, "files kept in %s\n", tmp);
    TEST_END();
}
