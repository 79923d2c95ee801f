/* A folder of class folders of images: the input is a list of records [class
 * byte][length, 2 bytes little-endian][that many bytes], each written as an image file (.png or
 * .jpg by the class byte's top bit) into one of four class folders; the folder
 * is opened at a training size and every image read. */
#include <dirent.h>

#include "fuzz.h"

static void rm_tree(const char *dir) {
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d)) != NULL;) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char p[512];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat st;
        if (!lstat(p, &st) && S_ISDIR(st.st_mode)) rm_tree(p);
        else unlink(p);
    }
    if (d) closedir(d);
    rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char root[300], cls[400], file[500];
    snprintf(root, sizeof root, "%s/f", fz_dir());
    rm_tree(root);
    mkdir(root, 0700);
    int n = 0;
    for (size_t at = 0; at + 3 <= size && n < 64; n++) {
        int k = data[at] & 3, jpg = data[at] >> 7;
        size_t len = data[at + 1] | (size_t)data[at + 2] << 8;
        at += 3;
        if (len > size - at) len = size - at;
        snprintf(cls, sizeof cls, "%s/class%d", root, k);
        mkdir(cls, 0700);
        snprintf(file, sizeof file, "%s/%d.%s", cls, n, jpg ? "jpg" : "png");
        FILE *f = fopen(file, "wb");
        if (f) {
            if (len) fwrite(data + at, 1, len, f);
            fclose(f);
        }
        at += len;
    }
    loom_dataset *ds = loom_dataset_open_folder(root, &(loom_dataset_opts){.height = 12, .width = 12});
    fz_read_all(ds, 64);
    loom_dataset_free(ds);
    return 0;
}
