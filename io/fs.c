#include "io/fs.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int loom_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int loom_is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int loom_mkdirs(const char *path) {
    char *tmp = strdup(path);
    if (!tmp) {
        errno = ENOMEM;
        return -1;
    }
    int rc = 0;
    for (char *p = tmp + 1; *p && !rc; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(tmp, 0755) && errno != EEXIST) rc = -1;
        *p = '/';
    }
    if (!rc && mkdir(tmp, 0755) && errno != EEXIST) rc = -1;
    free(tmp);
    return rc;
}
