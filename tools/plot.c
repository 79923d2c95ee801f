/* Loss and accuracy curves (plot.h): two panels side by side, each with axes,
 * ticks, a grid, labels and a legend; training in blue, validation in orange.
 * One drawing routine serves both surfaces: a PNG image surface and an SVG
 * stream surface, both written through loom_atomic_write. */
#include "plot.h"

#include <cairo-svg.h>
#include <cairo.h>
#include <fontconfig/fontconfig.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common.h"

enum { WIDTH = 1100, HEIGHT = 450 };

static int is_svg(const char *path) {
    size_t n = strlen(path);
    return n > 4 && !strcasecmp(path + n - 4, ".svg");
}

static int is_png(const char *path) {
    size_t n = strlen(path);
    return n > 4 && !strcasecmp(path + n - 4, ".png");
}

int plot_check(const char *path) {
    if (!is_svg(path) && !is_png(path))
        return loom_set_error("%s: a plot is written as .png or .svg (the name's ending chooses)", path);
    return check_writable(path);
}

/* "Nice" tick step for a range: 1, 2 or 5 times a power of ten, about n ticks. */
static double tick_step(double span, int n) {
    double raw = span / n, p = pow(10, floor(log10(raw))), f = raw / p;
    return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * p;
}

typedef struct {
    double x0, y0, w, h;       /* the plot area in device units */
    double xmin, xmax, ymin, ymax;
} panel;

static double px(const panel *p, double x) { return p->x0 + (x - p->xmin) / (p->xmax - p->xmin) * p->w; }
static double py(const panel *p, double y) { return p->y0 + p->h - (y - p->ymin) / (p->ymax - p->ymin) * p->h; }

static void text_at(cairo_t *cr, double x, double y, const char *s, double ax, double ay) {
    cairo_text_extents_t e;
    cairo_text_extents(cr, s, &e);
    cairo_move_to(cr, x - ax * e.width - e.x_bearing, y - ay * e.height - e.y_bearing);
    cairo_show_text(cr, s);
}

/* One series: the value of epoch i is get(h + i), skipped where negative. */
static void series(cairo_t *cr, const panel *p, const loom_epoch_metrics *h, int n, double (*get)(const loom_epoch_metrics *),
                   double r, double g, double b) {
    cairo_set_source_rgb(cr, r, g, b);
    cairo_set_line_width(cr, 2);
    int open = 0;
    for (int i = 0; i < n; i++) {
        double v = get(&h[i]);
        if (!(v >= 0) || !isfinite(v)) {
            open = 0;
            continue;
        }
        if (open) cairo_line_to(cr, px(p, h[i].epoch), py(p, v));
        else cairo_move_to(cr, px(p, h[i].epoch), py(p, v));
        open = 1;
    }
    cairo_stroke(cr);
    for (int i = 0; i < n; i++) {
        double v = get(&h[i]);
        if (!(v >= 0) || !isfinite(v)) continue;
        cairo_arc(cr, px(p, h[i].epoch), py(p, v), 3.5, 0, 2 * M_PI);
        cairo_fill(cr);
    }
}

static double train_loss(const loom_epoch_metrics *m) { return m->train_loss; }
static double val_loss(const loom_epoch_metrics *m) { return m->val_loss; }
static double train_acc(const loom_epoch_metrics *m) { return 100 * m->train_acc; }
static double val_acc(const loom_epoch_metrics *m) { return m->val_acc >= 0 ? 100 * m->val_acc : -1; }

static void draw_panel(cairo_t *cr, double x, double y, double w, double hgt, const char *title, const char *ylabel,
                       const loom_epoch_metrics *h, int n, double (*tr)(const loom_epoch_metrics *),
                       double (*va)(const loom_epoch_metrics *), int legend_low) {
    panel p = {.x0 = x + 70, .y0 = y + 40, .w = w - 90, .h = hgt - 95};
    p.xmin = h[0].epoch - 0.5;
    p.xmax = h[n - 1].epoch + 0.5;
    double lo = INFINITY, hi = -INFINITY;
    int has_val = 0;
    for (int i = 0; i < n; i++) {
        double a = tr(&h[i]), b = va(&h[i]);
        if (isfinite(a)) lo = fmin(lo, a), hi = fmax(hi, a);
        if (b >= 0 && isfinite(b)) lo = fmin(lo, b), hi = fmax(hi, b), has_val = 1;
    }
    if (!isfinite(lo)) lo = 0, hi = 1;
    if (hi - lo < 1e-9) lo -= 0.5, hi += 0.5;
    double pad = 0.08 * (hi - lo);
    double step = tick_step(hi - lo + 2 * pad, 6);
    p.ymin = floor((lo - pad) / step) * step;
    p.ymax = ceil((hi + pad) / step) * step;

    cairo_set_font_size(cr, 15);
    cairo_set_source_rgb(cr, 0, 0, 0);
    text_at(cr, p.x0 + p.w / 2, y + 18, title, 0.5, 0.5);
    cairo_set_font_size(cr, 12);
    /* grid and ticks */
    cairo_set_line_width(cr, 1);
    char buf[32];
    for (double v = p.ymin; v <= p.ymax + step / 2; v += step) {
        cairo_set_source_rgb(cr, 0.88, 0.88, 0.88);
        cairo_move_to(cr, p.x0, py(&p, v));
        cairo_line_to(cr, p.x0 + p.w, py(&p, v));
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
        snprintf(buf, sizeof buf, "%g", fabs(v) < step / 1e6 ? 0.0 : v);
        text_at(cr, p.x0 - 6, py(&p, v), buf, 1, 0.5);
    }
    int span = h[n - 1].epoch - h[0].epoch + 1, every = 1;
    while (span / every > 12) every = every < 5 ? every + 1 : every * 2;
    for (int e = h[0].epoch; e <= h[n - 1].epoch; e++) {
        if ((e - h[0].epoch) % every) continue;
        cairo_set_source_rgb(cr, 0.88, 0.88, 0.88);
        cairo_move_to(cr, px(&p, e), p.y0);
        cairo_line_to(cr, px(&p, e), p.y0 + p.h);
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
        snprintf(buf, sizeof buf, "%d", e);
        text_at(cr, px(&p, e), p.y0 + p.h + 8, buf, 0.5, 0);
    }
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_rectangle(cr, p.x0, p.y0, p.w, p.h);
    cairo_stroke(cr);
    text_at(cr, p.x0 + p.w / 2, p.y0 + p.h + 32, "epoch", 0.5, 0);
    cairo_save(cr);
    cairo_translate(cr, x + 16, p.y0 + p.h / 2);
    cairo_rotate(cr, -M_PI / 2);
    text_at(cr, 0, 0, ylabel, 0.5, 0.5);
    cairo_restore(cr);

    series(cr, &p, h, n, tr, 0.12, 0.47, 0.71);
    if (has_val) series(cr, &p, h, n, va, 1.0, 0.5, 0.05);
    /* legend */
    double lx = p.x0 + p.w - 120, ly = legend_low ? p.y0 + p.h - (has_val ? 48 : 26) : p.y0 + 10;
    const char *names[2] = {"training", "validation"};
    const double col[2][3] = {{0.12, 0.47, 0.71}, {1.0, 0.5, 0.05}};
    for (int k = 0; k < 1 + has_val; k++) {
        cairo_set_source_rgb(cr, col[k][0], col[k][1], col[k][2]);
        cairo_set_line_width(cr, 2);
        cairo_move_to(cr, lx, ly + 8 + 20 * k);
        cairo_line_to(cr, lx + 24, ly + 8 + 20 * k);
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0, 0, 0);
        text_at(cr, lx + 30, ly + 8 + 20 * k, names[k], 0, 0.5);
    }
}

static void draw(cairo_t *cr, const char *title, const loom_epoch_metrics *h, int n) {
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, 16);
    cairo_set_source_rgb(cr, 0, 0, 0);
    text_at(cr, WIDTH / 2.0, 14, title, 0.5, 0.5);
    draw_panel(cr, 0, 24, WIDTH / 2.0, HEIGHT - 24, "loss", "cross-entropy", h, n, train_loss, val_loss, 0);
    draw_panel(cr, WIDTH / 2.0, 24, WIDTH / 2.0, HEIGHT - 24, "accuracy", "accuracy (%)", h, n, train_acc, val_acc, 1);
}

typedef struct {
    const char *title;
    const loom_epoch_metrics *h;
    int n, svg;
    FILE *f;
} job;

static cairo_status_t to_file(void *closure, const unsigned char *data, unsigned int len) {
    job *j = closure;
    return fwrite(data, 1, len, j->f) == len ? CAIRO_STATUS_SUCCESS : CAIRO_STATUS_WRITE_ERROR;
}

static int write_plot(FILE *f, void *ctx) {
    job *j = ctx;
    j->f = f;
    cairo_surface_t *s = j->svg ? cairo_svg_surface_create_for_stream(to_file, j, WIDTH, HEIGHT)
                                : cairo_image_surface_create(CAIRO_FORMAT_RGB24, WIDTH, HEIGHT);
    cairo_t *cr = cairo_create(s);
    draw(cr, j->title, j->h, j->n);
    cairo_status_t st = cairo_status(cr);
    cairo_destroy(cr);
    if (st == CAIRO_STATUS_SUCCESS && !j->svg) st = cairo_surface_write_to_png_stream(s, to_file, j);
    cairo_surface_finish(s); /* an SVG is written out here */
    if (st == CAIRO_STATUS_SUCCESS) st = cairo_surface_status(s);
    cairo_surface_destroy(s);
    if (st != CAIRO_STATUS_SUCCESS) return loom_set_error("drawing the plot: %s", cairo_status_to_string(st));
    return LOOM_OK;
}

int plot_write(const char *path, const char *title, const loom_epoch_metrics *h, int n) {
    if (n <= 0) return loom_set_error("%s: no epochs to plot", path);
    job j = {.title = title, .h = h, .n = n, .svg = is_svg(path)};
    if (!j.svg && !is_png(path)) return plot_check(path);
    return loom_atomic_write(path, write_plot, &j);
}

void plot_shutdown(void) {
    cairo_debug_reset_static_data();
    FcFini();
}
