/* The L-BFGS-B iteration of optkit.minimization.lbfgsb in C, for float64 problems on the CPU.
 *
 * The same algorithm as lbfgsb.py's NumPy engine, step for step (the module docstring there has
 * the math; each function below names the Python function it follows): the generalized Cauchy
 * point, the subspace minimization with its projection or backtrack, the Moré–Thuente line
 * search capped at the box, and the compact memory B = θ(I − V N⁻¹ Vᵀ) with N factored once per
 * update. The driver (limits, stopping tests, callback, the result) stays in Python: one call
 * of Engine.iterate per iteration, which calls the objective itself for each trial point.
 *
 * Why C: an iteration is ~55 small vector operations; in NumPy each costs 0.2–3 µs of call
 * overhead, which on problems of 2–200 variables is most of the run. Here the operations are
 * plain loops (O(m·n) per iteration), and the 2k × 2k systems (k ≤ m pairs) are solved by LU
 * with partial pivoting written out (LAPACK's getrf/getrs on such sizes is call overhead too).
 *
 * No NumPy C API: arrays cross through the buffer protocol, new arrays come from a factory
 * given by the caller, so the extension builds against Python's headers alone.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define BIG_STEP 1e10 /* L-BFGS-B's step cap without bounds */

/* --- small dense linear algebra ------------------------------------------------------------ */

/* LU with partial pivoting of the p × p matrix A (row stride lda) into lu (p × p, stride p);
 * 0 on success, 1 on an exactly zero pivot (LAPACK getrf's info > 0). */
static int lu_factor(const double *A, Py_ssize_t lda, Py_ssize_t p, double *lu, int *piv)
{
    for (Py_ssize_t i = 0; i < p; i++)
        memcpy(lu + i * p, A + i * lda, (size_t)p * sizeof(double));
    int singular = 0;
    for (Py_ssize_t j = 0; j < p; j++) {
        Py_ssize_t r = j;
        double best = fabs(lu[j * p + j]);
        for (Py_ssize_t i = j + 1; i < p; i++) {
            double v = fabs(lu[i * p + j]);
            if (v > best) { best = v; r = i; }
        }
        piv[j] = (int)r;
        if (r != j)
            for (Py_ssize_t c = 0; c < p; c++) {
                double tmp = lu[j * p + c]; lu[j * p + c] = lu[r * p + c]; lu[r * p + c] = tmp;
            }
        double pv = lu[j * p + j];
        if (pv == 0.0) { singular = 1; continue; }
        for (Py_ssize_t i = j + 1; i < p; i++) {
            double l = lu[i * p + j] / pv;
            lu[i * p + j] = l;
            if (l != 0.0)
                for (Py_ssize_t c = j + 1; c < p; c++) lu[i * p + c] -= l * lu[j * p + c];
        }
    }
    return singular;
}

/* x ← A⁻¹ x with the factors of lu_factor. */
static void lu_solve(const double *lu, const int *piv, Py_ssize_t p, double *x)
{
    for (Py_ssize_t j = 0; j < p; j++)
        if (piv[j] != j) { double t = x[j]; x[j] = x[piv[j]]; x[piv[j]] = t; }
    for (Py_ssize_t i = 1; i < p; i++) {
        double s = x[i];
        for (Py_ssize_t c = 0; c < i; c++) s -= lu[i * p + c] * x[c];
        x[i] = s;
    }
    for (Py_ssize_t i = p - 1; i >= 0; i--) {
        double s = x[i];
        for (Py_ssize_t c = i + 1; c < p; c++) s -= lu[i * p + c] * x[c];
        x[i] = s / lu[i * p + i];
    }
}

/* aᵀb in four partial sums (as BLAS ddot unrolls: the compiler vectorizes it) */
static double dot(const double *a, const double *b, Py_ssize_t n)
{
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
    Py_ssize_t i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += a[i] * b[i];
        s1 += a[i + 1] * b[i + 1];
        s2 += a[i + 2] * b[i + 2];
        s3 += a[i + 3] * b[i + 3];
    }
    for (; i < n; i++) s0 += a[i] * b[i];
    return (s0 + s1) + (s2 + s3);
}

/* --- Moré–Thuente (more_thuente.py: dcstep, MoreThuente) ----------------------------------- */

typedef struct {
    double ftol, gtol, xtol;
    double stp, stpmin, stpmax, finit, ginit, gtest, width, width1;
    double stx, fx, gx, sty, fy, gy, stmin, stmax;
    int brackt, stage;
} MT;

/* The cubic's γ = s·√(max((θ/s)² − (a/s)(b/s), 0)), s = max(|θ|, |a|, |b|) (dcstep's cases). */
static double cubic_gamma(double theta, double a, double b)
{
    double s = fmax(fmax(fabs(theta), fabs(a)), fabs(b));
    return s * sqrt(fmax((theta / s) * (theta / s) - (a / s) * (b / s), 0.0));
}

static void dcstep(double *stx, double *fx, double *dx, double *sty, double *fy, double *dy,
                   double *stp, double fp, double dp, int *brackt, double stpmin, double stpmax)
{
    double sgnd = (*dx != 0.0) ? dp * (*dx / fabs(*dx)) : NAN;
    double theta, gamma, p, q, r, stpc, stpq, stpf;
    if (fp > *fx) { /* case 1 */
        theta = 3.0 * (*fx - fp) / (*stp - *stx) + *dx + dp;
        gamma = cubic_gamma(theta, *dx, dp);
        if (*stp < *stx) gamma = -gamma;
        p = (gamma - *dx) + theta;
        q = ((gamma - *dx) + gamma) + dp;
        stpc = *stx + (p / q) * (*stp - *stx);
        stpq = *stx + ((*dx / ((*fx - fp) / (*stp - *stx) + *dx)) / 2.0) * (*stp - *stx);
        stpf = (fabs(stpc - *stx) < fabs(stpq - *stx)) ? stpc : stpc + (stpq - stpc) / 2.0;
        *brackt = 1;
    } else if (sgnd < 0.0) { /* case 2 */
        theta = 3.0 * (*fx - fp) / (*stp - *stx) + *dx + dp;
        gamma = cubic_gamma(theta, *dx, dp);
        if (*stp > *stx) gamma = -gamma;
        p = (gamma - dp) + theta;
        q = ((gamma - dp) + gamma) + *dx;
        stpc = *stp + (p / q) * (*stx - *stp);
        stpq = *stp + (dp / (dp - *dx)) * (*stx - *stp);
        stpf = (fabs(stpc - *stp) > fabs(stpq - *stp)) ? stpc : stpq;
        *brackt = 1;
    } else if (fabs(dp) < fabs(*dx)) { /* case 3 */
        theta = 3.0 * (*fx - fp) / (*stp - *stx) + *dx + dp;
        gamma = cubic_gamma(theta, *dx, dp);
        if (*stp > *stx) gamma = -gamma;
        p = (gamma - dp) + theta;
        q = (gamma + (*dx - dp)) + gamma;
        r = p / q;
        if (r < 0.0 && gamma != 0.0) stpc = *stp + r * (*stx - *stp);
        else if (*stp > *stx) stpc = stpmax;
        else stpc = stpmin;
        stpq = *stp + (dp / (dp - *dx)) * (*stx - *stp);
        if (*brackt) {
            stpf = (fabs(stpc - *stp) < fabs(stpq - *stp)) ? stpc : stpq;
            if (*stp > *stx) stpf = fmin(*stp + 0.66 * (*sty - *stp), stpf);
            else stpf = fmax(*stp + 0.66 * (*sty - *stp), stpf);
        } else {
            stpf = (fabs(stpc - *stp) > fabs(stpq - *stp)) ? stpc : stpq;
            stpf = fmax(stpmin, fmin(stpmax, stpf));
        }
    } else { /* case 4 */
        if (*brackt) {
            theta = 3.0 * (fp - *fy) / (*sty - *stp) + *dy + dp;
            gamma = cubic_gamma(theta, *dy, dp);
            if (*stp > *sty) gamma = -gamma;
            p = (gamma - dp) + theta;
            q = ((gamma - dp) + gamma) + *dy;
            stpf = *stp + (p / q) * (*sty - *stp);
        } else if (*stp > *stx) stpf = stpmax;
        else stpf = stpmin;
    }
    if (fp > *fx) {
        *sty = *stp; *fy = fp; *dy = dp;
    } else {
        if (sgnd < 0.0) { *sty = *stx; *fy = *fx; *dy = *dx; }
        *stx = *stp; *fx = fp; *dx = dp;
    }
    *stp = stpf;
}

static void mt_start(MT *s, double f, double g, double stp, double stpmin, double stpmax)
{
    s->stp = stp; s->stpmin = stpmin; s->stpmax = stpmax;
    s->brackt = 0; s->stage = 1;
    s->finit = f; s->ginit = g;
    s->gtest = s->ftol * g;
    s->width = stpmax - stpmin;
    s->width1 = s->width / 0.5;
    s->stx = 0.0; s->fx = f; s->gx = g;
    s->sty = 0.0; s->fy = f; s->gy = g;
    s->stmin = 0.0; s->stmax = stp + 4.0 * stp;
}

/* MoreThuente.accepts_first */
static int mt_accepts_first(const MT *s, double f0, double g0, double stp, double stpmax,
                            double f, double g)
{
    double ftest = f0 + stp * (s->ftol * g0);
    return f <= ftest && (fabs(g) <= s->gtol * -g0 || (stp == stpmax && g <= s->ftol * g0));
}

/* MoreThuente.step: 1 for "fg" (evaluate at s->stp), 0 for "converged" or "warning". */
static int mt_step(MT *s, double f, double g)
{
    double stp = s->stp;
    double ftest = s->finit + stp * s->gtest;
    if (s->stage == 1 && f <= ftest && g >= 0.0) s->stage = 2;
    int fg = 1;
    if (s->brackt && (stp <= s->stmin || stp >= s->stmax)) fg = 0;
    if (s->brackt && s->stmax - s->stmin <= s->xtol * s->stmax) fg = 0;
    if (stp == s->stpmax && f <= ftest && g <= s->gtest) fg = 0;
    if (stp == s->stpmin && (f > ftest || g >= s->gtest)) fg = 0;
    if (f <= ftest && fabs(g) <= s->gtol * (-s->ginit)) fg = 0;
    if (!fg) return 0;
    double gt = s->gtest;
    if (s->stage == 1 && f <= s->fx && f > ftest) { /* the modified function ψ */
        double stx = s->stx, fxm = s->fx - s->stx * gt, gxm = s->gx - gt;
        double sty = s->sty, fym = s->fy - s->sty * gt, gym = s->gy - gt;
        dcstep(&stx, &fxm, &gxm, &sty, &fym, &gym, &stp, f - stp * gt, g - gt, &s->brackt,
               s->stmin, s->stmax);
        s->stx = stx; s->sty = sty;
        s->fx = fxm + stx * gt; s->fy = fym + sty * gt;
        s->gx = gxm + gt; s->gy = gym + gt;
    } else {
        dcstep(&s->stx, &s->fx, &s->gx, &s->sty, &s->fy, &s->gy, &stp, f, g, &s->brackt,
               s->stmin, s->stmax);
    }
    if (s->brackt) {
        if (fabs(s->sty - s->stx) >= 0.66 * s->width1) stp = s->stx + 0.5 * (s->sty - s->stx);
        s->width1 = s->width;
        s->width = fabs(s->sty - s->stx);
        s->stmin = fmin(s->stx, s->sty);
        s->stmax = fmax(s->stx, s->sty);
    } else {
        s->stmin = stp + 1.1 * (stp - s->stx);
        s->stmax = stp + 4.0 * (stp - s->stx);
    }
    stp = fmin(fmax(stp, s->stpmin), s->stpmax);
    if (s->brackt &&
        (stp <= s->stmin || stp >= s->stmax || s->stmax - s->stmin <= s->xtol * s->stmax))
        stp = s->stx;
    s->stp = stp;
    return 1;
}

/* --- the engine ---------------------------------------------------------------------------- */

typedef struct { double t; Py_ssize_t i; } Brk; /* a breakpoint tᵢ and its variable */

/* breakpoints in increasing t, ties in index order (the NumPy engine's stable argsort) */
static int cmp_brk(const void *a, const void *b)
{
    const Brk *x = a, *y = b;
    if (x->t < y->t) return -1;
    if (x->t > y->t) return 1;
    return (x->i > y->i) - (x->i < y->i);
}

/* Python's max(a, 0.0): a unless 0.0 > a (NaN stays NaN) */
static double max0(double a) { return 0.0 > a ? 0.0 : a; }

/* np.maximum(a, b): NaN if either is */
static double npmax(double a, double b) { return (isnan(a) || isnan(b)) ? NAN : (a >= b ? a : b); }

typedef struct {
    PyObject_HEAD
    Py_ssize_t n, m;
    double *lower, *upper; /* the box (±inf where none) */
    int constrained, boxed;
    double eps;
    /* the memory (CompactLBFGS): windows on buffers of 2m pairs */
    double *V;  /* 4m × n: rows y₁, s₁, y₂, s₂, … */
    double *N;  /* 4m × 4m */
    double *G;  /* 4m × 4m, the Gram matrix V Vᵀ in N's layout (formk's role: K from it) */
    double *D;  /* 2m */
    Py_ssize_t k, start;
    double theta;
    double *lu; int *piv; /* LU of the window of N (2k × 2k, compact) */
    double *klu, *kw; int *kpiv; /* LU of K, and K */
    /* workspace */
    double *t, *gz, *dvec, *dhat, *zu, *ymem, *vk, *vk2, *vk3, *P, *Pc, *C;
    char *free_;
    Py_ssize_t *fidx;
    Brk *brk;
    /* the last iteration, for update() (pending: one accepted step not yet used) */
    double stp, gd, gd_old, dtd;
    int pending;
    MT mt;
    PyObject *empty;   /* callable: a new float64 array of length n */
    PyObject *as_f64;  /* callable: an array as contiguous float64 */
} Engine;

static void engine_reset(Engine *e)
{
    e->k = 0; e->start = 0; e->theta = 1.0;
}

static void engine_dealloc(Engine *e)
{
    PyMem_Free(e->lower); PyMem_Free(e->upper);
    PyMem_Free(e->V); PyMem_Free(e->N); PyMem_Free(e->G); PyMem_Free(e->D);
    PyMem_Free(e->lu); PyMem_Free(e->piv);
    PyMem_Free(e->klu); PyMem_Free(e->kw); PyMem_Free(e->kpiv);
    PyMem_Free(e->t); PyMem_Free(e->gz); PyMem_Free(e->dvec); PyMem_Free(e->dhat);
    PyMem_Free(e->zu); PyMem_Free(e->ymem); PyMem_Free(e->vk); PyMem_Free(e->vk2);
    PyMem_Free(e->vk3); PyMem_Free(e->P); PyMem_Free(e->Pc); PyMem_Free(e->C);
    PyMem_Free(e->free_); PyMem_Free(e->fidx); PyMem_Free(e->brk);
    Py_XDECREF(e->empty); Py_XDECREF(e->as_f64);
    Py_TYPE(e)->tp_free((PyObject *)e);
}

/* A read (or write) pointer to a contiguous float64 buffer of n values. */
static int get_buf(PyObject *o, Py_buffer *b, Py_ssize_t n, int writable, const char *what)
{
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(o, b, flags) < 0) return -1;
    if (b->itemsize != 8 || b->format == NULL || strcmp(b->format, "d") != 0 ||
        b->len != n * 8) {
        PyBuffer_Release(b);
        PyErr_Format(PyExc_ValueError, "%s must be a float64 array of %zd values", what, n);
        return -1;
    }
    return 0;
}

static int engine_init(Engine *e, PyObject *args, PyObject *kw)
{
    PyObject *lo, *hi, *empty, *as_f64;
    Py_ssize_t m;
    static char *kwlist[] = {"lower", "upper", "m", "empty", "as_f64", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOnOO", kwlist, &lo, &hi, &m, &empty, &as_f64))
        return -1;
    if (e->V != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Engine is already initialized");
        return -1;
    }
    if (!PyCallable_Check(empty) || !PyCallable_Check(as_f64)) {
        PyErr_SetString(PyExc_TypeError, "empty and as_f64 must be callable");
        return -1;
    }
    Py_buffer bl, bu;
    if (PyObject_GetBuffer(lo, &bl, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) return -1;
    if (bl.itemsize != 8 || bl.format == NULL || strcmp(bl.format, "d") != 0 || bl.len < 8 ||
        m < 1) {
        PyBuffer_Release(&bl);
        PyErr_SetString(PyExc_ValueError, "lower must be a non-empty float64 array; m >= 1");
        return -1;
    }
    Py_ssize_t n = bl.len / 8;
    if (get_buf(hi, &bu, n, 0, "upper") < 0) { PyBuffer_Release(&bl); return -1; }
    e->n = n; e->m = m;
    size_t nd = (size_t)n * sizeof(double), md = (size_t)(2 * m) * sizeof(double);
    e->lower = PyMem_Malloc(nd); e->upper = PyMem_Malloc(nd);
    e->V = PyMem_Calloc((size_t)(4 * m) * n, sizeof(double));
    e->N = PyMem_Calloc((size_t)(16 * m * m), sizeof(double));
    e->G = PyMem_Calloc((size_t)(16 * m * m), sizeof(double));
    e->D = PyMem_Calloc((size_t)(2 * m), sizeof(double));
    e->lu = PyMem_Malloc(md * 2 * m); e->piv = PyMem_Malloc((size_t)(2 * m) * sizeof(int));
    e->klu = PyMem_Malloc(md * 2 * m); e->kw = PyMem_Malloc(md * 2 * m);
    e->kpiv = PyMem_Malloc((size_t)(2 * m) * sizeof(int));
    e->t = PyMem_Malloc(nd); e->gz = PyMem_Malloc(nd); e->dvec = PyMem_Malloc(nd);
    e->dhat = PyMem_Malloc(nd); e->zu = PyMem_Malloc(nd); e->ymem = PyMem_Malloc(nd);
    e->vk = PyMem_Malloc(md); e->vk2 = PyMem_Malloc(md); e->vk3 = PyMem_Malloc(md);
    e->P = PyMem_Malloc(md); e->Pc = PyMem_Malloc(md); e->C = PyMem_Malloc(md);
    e->free_ = PyMem_Malloc((size_t)n);
    e->fidx = PyMem_Malloc((size_t)(n + 1) * sizeof(Py_ssize_t));
    e->brk = PyMem_Malloc((size_t)n * sizeof(*e->brk));
    if (!e->lower || !e->upper || !e->V || !e->N || !e->G || !e->D || !e->lu || !e->piv ||
        !e->klu || !e->kw || !e->kpiv || !e->t || !e->gz || !e->dvec || !e->dhat || !e->zu ||
        !e->ymem || !e->vk || !e->vk2 || !e->vk3 || !e->P || !e->Pc || !e->C || !e->free_ ||
        !e->fidx || !e->brk) {
        PyBuffer_Release(&bl); PyBuffer_Release(&bu);
        PyErr_NoMemory();
        return -1;
    }
    memcpy(e->lower, bl.buf, nd);
    memcpy(e->upper, bu.buf, nd);
    PyBuffer_Release(&bl); PyBuffer_Release(&bu);
    int any = 0, all = 1;
    for (Py_ssize_t i = 0; i < n; i++) {
        int l = isfinite(e->lower[i]), u = isfinite(e->upper[i]);
        any |= l | u;
        all &= l & u;
    }
    e->constrained = any; e->boxed = all;
    e->eps = 2.220446049250313e-16;
    e->mt.ftol = 1e-3; e->mt.gtol = 0.9; e->mt.xtol = 0.1;
    Py_INCREF(empty); Py_XSETREF(e->empty, empty);
    Py_INCREF(as_f64); Py_XSETREF(e->as_f64, as_f64);
    engine_reset(e);
    return 0;
}

#define NS(e) (4 * (e)->m) /* row stride of N */
#define VROW(e, r) ((e)->V + ((2 * (e)->start) + (r)) * (e)->n) /* row r of the window of V */
#define NAT(e, i, j) ((e)->N[((2 * (e)->start) + (i)) * NS(e) + (2 * (e)->start) + (j)])
#define GAT(e, i, j) ((e)->G[((2 * (e)->start) + (i)) * NS(e) + (2 * (e)->start) + (j)])

/* Products with V stream its rows once, in blocks of BLK variables that stay in cache across
 * the 2k rows (at n = 10⁶ a product is memory-bound). Index sets: fi = NULL is 0 … cnt − 1. */
#define BLK 512

/* out[r] = Σₐ V_r[fi(a)] x[a], r < 2k (V x, or V̂ x̂ over the variables fi) */
static void v_dot(const Engine *e, const Py_ssize_t *fi, Py_ssize_t cnt, const double *x,
                  double *out)
{
    Py_ssize_t p = 2 * e->k;
    for (Py_ssize_t r = 0; r < p; r++) out[r] = 0.0;
    for (Py_ssize_t a0 = 0; a0 < cnt; a0 += BLK) {
        Py_ssize_t len = cnt - a0 < BLK ? cnt - a0 : BLK;
        for (Py_ssize_t r = 0; r < p; r++) {
            const double *vr = VROW(e, r);
            if (fi == NULL) {
                out[r] += dot(vr + a0, x + a0, len);
            } else {
                double sum = 0.0;
                for (Py_ssize_t a = a0; a < a0 + len; a++) sum += vr[fi[a]] * x[a];
                out[r] += sum;
            }
        }
    }
}

/* out[a] = Σ_r v[r] V_r[fi(a)], a < cnt (Vᵀv, or V̂ᵀv) */
static void vt_times(const Engine *e, const Py_ssize_t *fi, Py_ssize_t cnt, const double *v,
                     double *out)
{
    Py_ssize_t p = 2 * e->k;
    for (Py_ssize_t a0 = 0; a0 < cnt; a0 += BLK) {
        Py_ssize_t len = cnt - a0 < BLK ? cnt - a0 : BLK;
        double *o = out + a0;
        for (Py_ssize_t a = 0; a < len; a++) o[a] = 0.0;
        for (Py_ssize_t r = 0; r < p; r++) {
            const double *vr = VROW(e, r);
            double c = v[r];
            if (fi == NULL) {
                const double *src = vr + a0;
                for (Py_ssize_t a = 0; a < len; a++) o[a] += c * src[a];
            } else {
                const Py_ssize_t *ix = fi + a0;
                for (Py_ssize_t a = 0; a < len; a++) o[a] += c * vr[ix[a]];
            }
        }
    }
}

/* CompactLBFGS.update: 0 when N is singular or θ not finite. s and y are n-vectors; yᵀy is
 * taken from the Gram matrix. */
static int mem_update(Engine *e, const double *s, const double *y, double sty, double sts)
{
    Py_ssize_t n = e->n, m = e->m, ns = NS(e);
    Py_ssize_t o = e->start, k = e->k;
    if (k == m) { o += 1; k -= 1; }
    if (o + k == 2 * m) { /* the window at the buffers' end: move it to their start */
        Py_ssize_t i0 = 2 * o, rows = 2 * k;
        memmove(e->V, e->V + i0 * n, (size_t)(rows * n) * sizeof(double));
        for (Py_ssize_t r = 0; r < rows; r++) {
            memmove(e->N + r * ns, e->N + (i0 + r) * ns + i0, (size_t)rows * sizeof(double));
            memmove(e->G + r * ns, e->G + (i0 + r) * ns + i0, (size_t)rows * sizeof(double));
        }
        memmove(e->D, e->D + o, (size_t)k * sizeof(double));
        o = 0;
    }
    Py_ssize_t i0 = 2 * o, i = 2 * (o + k), rows = i + 2 - i0;
    memcpy(e->V + i * n, y, (size_t)n * sizeof(double));
    memcpy(e->V + (i + 1) * n, s, (size_t)n * sizeof(double));
    /* yᵀV_c and sᵀV_c for every row c of the new window (the new pair's own rows included):
     * one pass over V */
    double *gy = e->P, *gs = e->Pc;
    for (Py_ssize_t c = 0; c < rows; c++) gy[c] = gs[c] = 0.0;
    for (Py_ssize_t b0 = 0; b0 < n; b0 += BLK) {
        Py_ssize_t len = n - b0 < BLK ? n - b0 : BLK;
        for (Py_ssize_t c = 0; c < rows; c++) {
            const double *vc = e->V + (i0 + c) * n + b0;
            gy[c] += dot(y + b0, vc, len);
            gs[c] += dot(s + b0, vc, len);
        }
    }
    double *N = e->N, *G = e->G;
    for (Py_ssize_t c = 0; c < rows; c++) { /* rows and columns i, i + 1 of V Vᵀ */
        G[i * ns + i0 + c] = G[(i0 + c) * ns + i] = gy[c];
        G[(i + 1) * ns + i0 + c] = G[(i0 + c) * ns + i + 1] = gs[c];
    }
    /* row i + 1 of N: L[k, j] = sᵀyⱼ and sⱼᵀs in the columns of pair j (= G's row i + 1);
     * row i: 0 (L is strictly lower); the columns i, i + 1 by symmetry */
    for (Py_ssize_t c = i0; c < i; c++) {
        N[i * ns + c] = N[c * ns + i] = 0.0;
        N[(i + 1) * ns + c] = N[c * ns + i + 1] = gs[c - i0];
    }
    N[i * ns + i + 1] = N[(i + 1) * ns + i] = 0.0;
    N[(i + 1) * ns + i + 1] = sts;
    e->D[o + k] = sty;
    e->start = o; e->k = k + 1;
    double theta = gy[i - i0] / sty; /* yᵀy / sᵀy */
    e->theta = theta;
    for (Py_ssize_t j = 0; j <= k; j++) N[(2 * (o + j)) * ns + 2 * (o + j)] = e->D[o + j] * -theta;
    int bad = lu_factor(N + i0 * ns + i0, ns, 2 * (k + 1), e->lu, e->piv);
    return !bad && isfinite(theta);
}

/* _cauchy. Fills e->free_, returns xc through xc_out (n; may be x's copy), and:
 * *nfree, *tsum, *first (1: xc on the first segment, q = V̂ᵀĝ in e->vk), *have_w (w = N⁻¹c in
 * e->vk3). */
static void cauchy(Engine *e, const double *x, const double *g, double *xc, Py_ssize_t *nfree,
                   double *tsum, int *first, int *have_w)
{
    Py_ssize_t n = e->n, k = e->k, p = 2 * k;
    double theta = e->theta;
    const double *lo = e->lower, *hi = e->upper;
    double *t = e->t, *gz = e->gz;
    char *fr = e->free_;
    double dd = 0.0;
    Py_ssize_t nf = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        double xl = x[i] - lo[i], xu = x[i] - hi[i];
        double a = xl / g[i], b = xu / g[i];
        double ti = (isnan(a) || isnan(b)) ? NAN : fmax(a, b);
        t[i] = ti;
        int f = ti > 0.0;
        fr[i] = (char)f;
        nf += f;
        gz[i] = f ? g[i] : 0.0 * g[i];
        dd += gz[i] * gz[i];
    }
    *nfree = nf; *first = 0; *have_w = 0;
    if (dd == 0.0) {
        memcpy(xc, x, (size_t)n * sizeof(double));
        *tsum = 0.0;
        return;
    }
    double f2_org = theta * dd, f2;
    double *q = e->vk, *nq = e->vk2;
    if (k) {
        v_dot(e, NULL, n, gz, q); /* −Vᵀd */
        memcpy(nq, q, (size_t)p * sizeof(double));
        lu_solve(e->lu, e->piv, p, nq);
        f2 = theta * (dd - dot(q, nq, p));
    } else {
        f2 = f2_org;
    }
    double dtm = dd / f2;
    int hit = 0;
    for (Py_ssize_t i = 0; i < n; i++)
        if (fr[i] && t[i] <= dtm) { hit = 1; break; }
    if (!hit) {
        dtm = max0(dtm);
        for (Py_ssize_t i = 0; i < n; i++) xc[i] = x[i] + (-dtm) * gz[i];
        *tsum = dtm; *first = 1;
        return;
    }
    /* past the first breakpoint: walk the segments in order of their breakpoints */
    double *d = e->dvec;
    int bnded = 1;
    Py_ssize_t nb = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        d[i] = -gz[i];
        if (t[i] == INFINITY && d[i] != 0.0) bnded = 0;
        if (t[i] < INFINITY && fr[i]) { e->brk[nb].t = t[i]; e->brk[nb].i = i; nb++; }
    }
    qsort(e->brk, (size_t)nb, sizeof(*e->brk), cmp_brk);
    double *P = e->P, *Pc = e->Pc, *C = e->C, *NP = e->vk3;
    for (Py_ssize_t r = 0; r < p; r++) { P[r] = -q[r]; Pc[r] = 0.0; C[r] = 0.0; }
    double S = 0.0, Dj = dd, tj = 0.0, dtm_j = 0.0;
    Py_ssize_t j = 0;
    int stop = 0;
    for (j = 0; j <= nb; j++) {
        if (j > 0) {
            Py_ssize_t b = e->brk[j - 1].i;
            double db = d[b];
            double tprev = tj;
            tj = e->brk[j - 1].t;
            double dtprev = tj - tprev;
            S += db * db;
            Dj = dd - S;
            for (Py_ssize_t r = 0; r < p; r++) {
                C[r] += P[r] * dtprev;
                Pc[r] += VROW(e, r)[b] * db;
                P[r] = -q[r] - Pc[r];
            }
        }
        double f1;
        if (k) {
            memcpy(NP, P, (size_t)p * sizeof(double));
            lu_solve(e->lu, e->piv, p, NP);
            f2 = theta * (Dj - dot(NP, P, p));
            f1 = theta * (tj * Dj - dot(NP, C, p)) - Dj;
        } else {
            f2 = theta * Dj;
            f1 = theta * tj * Dj - Dj;
        }
        if (j > 0) f2 = npmax(f2, e->eps * f2_org);
        dtm_j = -f1 / f2;
        if (j < nb && dtm_j < e->brk[j].t - tj) { stop = 1; break; }
    }
    if (!stop) {
        j = nb;
        dtm = bnded ? 0.0 : dtm_j;
    } else {
        dtm = dtm_j;
    }
    dtm = max0(dtm);
    double ts = tj + dtm;
    for (Py_ssize_t a = 0; a < j; a++) d[e->brk[a].i] = 0.0;
    for (Py_ssize_t i = 0; i < n; i++) xc[i] = x[i] + ts * d[i];
    for (Py_ssize_t a = 0; a < j; a++) {
        Py_ssize_t b = e->brk[a].i;
        xc[b] = g[b] < 0 ? hi[b] : lo[b];
        fr[b] = 0;
    }
    *nfree = nf - j;
    *tsum = ts;
    if (k) {
        for (Py_ssize_t r = 0; r < p; r++) NP[r] = C[r] + dtm * P[r];
        lu_solve(e->lu, e->piv, p, NP);
        *have_w = 1;
    }
}

/* _subspace_step. z (n) receives the point; e->dvec d = z − x; returns 0, or 1 when K is
 * singular or d̂ not finite (restart). *gd_out = gᵀd. */
static int subspace(Engine *e, const double *x, const double *g, const double *xc,
                    Py_ssize_t nfree, double tsum, int first, int have_w, double *z,
                    double *gd_out)
{
    Py_ssize_t n = e->n, k = e->k, p = 2 * k;
    double theta = e->theta;
    int every = nfree == n;
    /* the free variables from the front of fidx, the others from its back; NULL: all free */
    Py_ssize_t *fi = NULL, nf = n;
    if (!every) {
        const char *fr = e->free_;
        Py_ssize_t nx = n;
        fi = e->fidx;
        nf = 0;
        for (Py_ssize_t i = 0; i < n; i++) {
            if (fr[i]) fi[nf++] = i;
            else fi[--nx] = i;
        }
    }
#define IX(a) (fi ? fi[a] : (a))
    /* K = N − V̂ᵀV̂ (p × p) into kw, its LU into klu. V̂ᵀV̂ = V Vᵀ − (the fixed variables' part)
     * when fewer variables are fixed than free (L-BFGS-B's formk also updates rather than
     * recomputes), else summed over the free ones. */
    double *K = e->klu, *Ktmp = e->kw;
    int from_gram = n - nf < nf;
    for (Py_ssize_t r = 0; r < p; r++) {
        const double *vr = VROW(e, r);
        for (Py_ssize_t c = r; c < p; c++) {
            const double *vc = VROW(e, c);
            double sum = 0.0;
            if (every) {
                sum = GAT(e, r, c);
            } else if (from_gram) {
                double fixed = 0.0;
                for (Py_ssize_t a = nf; a < n; a++) fixed += vr[fi[a]] * vc[fi[a]];
                sum = GAT(e, r, c) - fixed;
            } else {
                for (Py_ssize_t a = 0; a < nf; a++) sum += vr[fi[a]] * vc[fi[a]];
            }
            Ktmp[r * p + c] = NAT(e, r, c) - sum;
            Ktmp[c * p + r] = NAT(e, c, r) - sum;
        }
    }
    if (lu_factor(Ktmp, p, p, K, e->kpiv)) return 1;
    double *dh = e->dhat; /* d̂ on the free variables, in fi's order */
    double *v = e->vk2;
    const double *base;
    if (first) {
        /* x̂ − B̂⁻¹ĝ, B̂⁻¹ĝ = (ĝ + V̂ K⁻¹ q)/θ, q = V̂ᵀĝ from the Cauchy step (e->vk) */
        base = x;
        memcpy(v, e->vk, (size_t)p * sizeof(double));
        lu_solve(K, e->kpiv, p, v);
        double mt = -1.0 / theta;
        vt_times(e, fi, nf, v, dh);
        for (Py_ssize_t a = 0; a < nf; a++) dh[a] = mt * dh[a] + mt * g[IX(a)];
    } else {
        /* r̂ = θ V̂ w + (θ·tsum − 1) ĝ, w = N⁻¹c (e->vk3); d̂ = (r̂ + V̂ K⁻¹ V̂ᵀ r̂)/θ from xc */
        base = xc;
        double *r_ = e->zu; /* r̂ in fi's order */
        double cg = theta * tsum - 1.0;
        if (have_w) {
            vt_times(e, fi, nf, e->vk3, r_);
            for (Py_ssize_t a = 0; a < nf; a++) r_[a] = theta * r_[a] + cg * g[IX(a)];
        } else {
            for (Py_ssize_t a = 0; a < nf; a++) r_[a] = -g[IX(a)];
        }
        v_dot(e, fi, nf, r_, v);
        lu_solve(K, e->kpiv, p, v);
        double it = 1.0 / theta;
        vt_times(e, fi, nf, v, dh);
        for (Py_ssize_t a = 0; a < nf; a++) dh[a] = it * dh[a] + it * r_[a];
    }
    for (Py_ssize_t a = 0; a < nf; a++)
        if (!isfinite(dh[a])) return 1;
    double *d = e->dvec;
    if (!e->constrained) { /* every variable free */
        for (Py_ssize_t i = 0; i < n; i++) { z[i] = base[i] + dh[i]; d[i] = z[i] - x[i]; }
        *gd_out = dot(g, d, n);
        return 0;
    }
    /* project zu = base + Z d̂ on the box; the projection moves free variables only */
    double *zu = e->zu;
    memcpy(zu, base, (size_t)n * sizeof(double));
    for (Py_ssize_t a = 0; a < nf; a++) zu[IX(a)] += dh[a];
    const double *lo = e->lower, *hi = e->upper;
    int moved = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        double zi = fmin(fmax(zu[i], lo[i]), hi[i]);
        z[i] = zi;
        moved |= zi != zu[i];
        d[i] = zi - x[i];
    }
    double gd = dot(g, d, n);
    if (gd <= 0.0 || !moved) { *gd_out = gd; return 0; }
    /* the projected step is not a descent direction: backtrack to the box instead */
    Py_ssize_t ibd = 0;
    double best = INFINITY;
    for (Py_ssize_t a = 0; a < nf; a++) {
        Py_ssize_t i = IX(a);
        double lf = lo[i], uf = hi[i], xf = xc[i];
        double dha = zu[i] - xf;
        dh[a] = dha;
        double ratio;
        if (dha < 0 && isfinite(lf)) {
            double al = lf - xf;
            ratio = al >= 0 ? 0.0 : al / dha;
        } else if (dha > 0 && isfinite(uf)) {
            double au = uf - xf;
            ratio = au <= 0 ? 0.0 : au / dha;
        } else {
            ratio = INFINITY;
        }
        if (a == 0 || ratio < best) { best = ratio; ibd = a; }
    }
    double alpha = fmin(1.0, best);
    memcpy(z, xc, (size_t)n * sizeof(double));
    for (Py_ssize_t a = 0; a < nf; a++) z[IX(a)] = xc[IX(a)] + alpha * dh[a];
    if (alpha < 1.0) {
        Py_ssize_t i = IX(ibd);
        z[i] = dh[ibd] > 0 ? hi[i] : lo[i];
    }
    for (Py_ssize_t i = 0; i < n; i++) d[i] = z[i] - x[i];
    *gd_out = dot(g, d, n);
    return 0;
#undef IX
}

/* _max_step */
static double max_step(const Engine *e, const double *x, const double *d)
{
    double top = NAN;
    for (Py_ssize_t i = 0; i < e->n; i++) {
        double a = (x[i] - e->lower[i]) / d[i], b = (x[i] - e->upper[i]) / d[i];
        if (isnan(a) || isnan(b)) continue;
        double mn = fmin(a, b);
        if (isnan(top) || mn > top) top = mn;
    }
    top = -top;
    if (top < BIG_STEP) return fmax(top, 0.0);
    return BIG_STEP;
}

/* _projected_grad_norm */
static double pg_norm(const Engine *e, const double *x, const double *g)
{
    double best = 0.0;
    int first = 1;
    for (Py_ssize_t i = 0; i < e->n; i++) {
        double v = g[i];
        if (e->constrained) {
            v = fmax(v, x[i] - e->upper[i]);
            v = fmin(v, x[i] - e->lower[i]);
        }
        double a = fabs(v);
        if (isnan(a)) return NAN;
        if (first || a > best) { best = a; first = 0; }
    }
    return best;
}

/* Methods need __init__ to have run (Engine.__new__ alone leaves no buffers). */
static int ready(const Engine *e)
{
    if (e->V != NULL) return 1;
    PyErr_SetString(PyExc_RuntimeError, "Engine is not initialized");
    return 0;
}

static PyObject *new_array(Engine *e, Py_buffer *b)
{
    PyObject *a = PyObject_CallNoArgs(e->empty);
    if (a == NULL) return NULL;
    if (get_buf(a, b, e->n, 1, "empty()") < 0) { Py_DECREF(a); return NULL; }
    return a;
}

/* f, g of evaluate(xt): g as a float64 array of n values (converted when needed). */
static int call_eval(Engine *e, PyObject *evaluate, PyObject *xt, double *f, PyObject **g,
                     Py_buffer *gb)
{
    PyObject *r = PyObject_CallOneArg(evaluate, xt);
    if (r == NULL) return -1;
    if (!PyTuple_Check(r) || PyTuple_GET_SIZE(r) != 2) {
        Py_DECREF(r);
        PyErr_SetString(PyExc_TypeError, "evaluate must return (f, g)");
        return -1;
    }
    *f = PyFloat_AsDouble(PyTuple_GET_ITEM(r, 0));
    if (*f == -1.0 && PyErr_Occurred()) { Py_DECREF(r); return -1; }
    PyObject *go = PyTuple_GET_ITEM(r, 1);
    Py_INCREF(go);
    Py_DECREF(r);
    if (PyObject_GetBuffer(go, gb, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) == 0) {
        if (gb->itemsize == 8 && gb->format && strcmp(gb->format, "d") == 0 &&
            gb->len == e->n * 8) {
            *g = go;
            return 0;
        }
        PyBuffer_Release(gb);
    } else {
        PyErr_Clear();
    }
    PyObject *conv = PyObject_CallOneArg(e->as_f64, go);
    Py_DECREF(go);
    if (conv == NULL) return -1;
    if (get_buf(conv, gb, e->n, 0, "the gradient") < 0) { Py_DECREF(conv); return -1; }
    *g = conv;
    return 0;
}

PyDoc_STRVAR(iterate_doc,
"iterate(evaluate, x, f, g, first_iteration, maxls)\n--\n\n"
"One L-BFGS-B iteration from x (f, g at x): Cauchy point, subspace step, line search, with\n"
"restarts from steepest descent as the NumPy engine. Returns (xt, ft, gt) at the accepted\n"
"point, or 2 (line search failed with an empty memory) or 3 (NaN/Inf met there).");

static PyObject *engine_iterate(Engine *e, PyObject *const *args, Py_ssize_t nargs)
{
    if (!ready(e)) return NULL;
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "iterate takes 6 arguments");
        return NULL;
    }
    PyObject *evaluate = args[0], *xo = args[1], *go = args[3];
    double f = PyFloat_AsDouble(args[2]);
    if (f == -1.0 && PyErr_Occurred()) return NULL;
    int first_iteration = PyObject_IsTrue(args[4]);
    Py_ssize_t maxls = PyLong_AsSsize_t(args[5]);
    if (maxls == -1 && PyErr_Occurred()) return NULL;
    Py_buffer xb, gb;
    if (get_buf(xo, &xb, e->n, 0, "x") < 0) return NULL;
    if (get_buf(go, &gb, e->n, 0, "g") < 0) { PyBuffer_Release(&xb); return NULL; }
    const double *x = xb.buf, *g = gb.buf;
    Py_ssize_t n = e->n;
    PyObject *result = NULL;
    for (;;) {
        /* 1. generalized Cauchy point and 2. subspace minimization, into z */
        Py_buffer zb;
        PyObject *zo = new_array(e, &zb);
        if (zo == NULL) break;
        double *z = zb.buf;
        Py_ssize_t nfree;
        double tsum, gd_old;
        int first, have_w;
        double *d = e->dvec;
        const double *xc = e->ymem; /* the Cauchy point */
        if (e->constrained || e->k == 0) {
            cauchy(e, x, g, e->ymem, &nfree, &tsum, &first, &have_w);
        } else { /* L-BFGS: xc = x, every variable free */
            xc = x;
            nfree = n; tsum = 0.0; first = 1; have_w = 0;
            v_dot(e, NULL, n, g, e->vk);
        }
        if (e->k && nfree) {
            int r = subspace(e, x, g, xc, nfree, tsum, first, have_w, z, &gd_old);
            if (r) { /* a factorization failed: forget the pairs, restart from −g */
                PyBuffer_Release(&zb); Py_DECREF(zo);
                engine_reset(e);
                continue;
            }
        } else {
            memcpy(z, xc, (size_t)n * sizeof(double));
            for (Py_ssize_t i = 0; i < n; i++) d[i] = z[i] - x[i];
            gd_old = dot(g, d, n);
        }
        /* 3. line search along d = z − x, inside the box */
        double dtd = dot(d, d, n), stpmx, stp;
        if (e->constrained) stpmx = first_iteration ? 1.0 : max_step(e, x, d);
        else stpmx = BIG_STEP;
        if (first_iteration && !e->boxed) {
            double dnorm = sqrt(dtd);
            stp = dnorm > 0 ? fmin(1.0 / dnorm, stpmx) : stpmx;
        } else {
            stp = 1.0;
        }
        int ok = gd_old < 0 && stpmx > 0, nonfinite = 0, accepted = 0, failed = 0;
        Py_ssize_t nback = 0;
        PyObject *xt_acc = NULL, *gt_acc = NULL;
        double ft_acc = 0.0, gd = 0.0;
        if (ok) {
            stp = fmin(stp, stpmx);
            int firsttrial = 1;
            for (;;) {
                PyObject *xt;
                if (stp == 1.0) {
                    xt = zo; Py_INCREF(xt);
                } else {
                    Py_buffer tb;
                    xt = new_array(e, &tb);
                    if (xt == NULL) { failed = 1; break; }
                    double *xtp = tb.buf;
                    for (Py_ssize_t i = 0; i < n; i++) xtp[i] = x[i] + stp * d[i];
                    if (e->constrained)
                        for (Py_ssize_t i = 0; i < n; i++)
                            xtp[i] = fmin(fmax(xtp[i], e->lower[i]), e->upper[i]);
                    PyBuffer_Release(&tb);
                }
                if (nback >= maxls) { Py_DECREF(xt); ok = 0; break; }
                double ft;
                PyObject *gt;
                Py_buffer gtb;
                if (call_eval(e, evaluate, xt, &ft, &gt, &gtb) < 0) {
                    Py_DECREF(xt); failed = 1; break;
                }
                nback++;
                gd = dot(gtb.buf, d, n);
                PyBuffer_Release(&gtb);
                int finite = isfinite(ft) && isfinite(gd);
                int accept = 0;
                if (firsttrial) {
                    if (finite && mt_accepts_first(&e->mt, f, gd_old, stp, stpmx, ft, gd))
                        accept = 1;
                    else {
                        mt_start(&e->mt, f, gd_old, stp, 0.0, stpmx);
                        firsttrial = 0;
                    }
                }
                if (!accept) {
                    if (!finite) {
                        nonfinite = 1;
                        e->mt.stp = e->mt.stx + 0.5 * (stp - e->mt.stx);
                    } else if (!mt_step(&e->mt, ft, gd)) {
                        accept = 1;
                    }
                }
                if (accept) {
                    xt_acc = xt; gt_acc = gt; ft_acc = ft; accepted = 1;
                    break;
                }
                Py_DECREF(xt); Py_DECREF(gt);
                stp = e->mt.stp;
            }
        }
        PyBuffer_Release(&zb);
        Py_DECREF(zo);
        if (failed) break;
        if (!accepted) {
            if (e->k == 0) {
                result = PyLong_FromLong(nonfinite ? 3 : 2);
                break;
            }
            engine_reset(e);
            continue;
        }
        e->stp = stp; e->gd = gd; e->gd_old = gd_old; e->dtd = dtd; e->pending = 1;
        result = PyTuple_New(3);
        if (result == NULL) { Py_DECREF(xt_acc); Py_DECREF(gt_acc); break; }
        PyTuple_SET_ITEM(result, 0, xt_acc);
        PyObject *fo = PyFloat_FromDouble(ft_acc);
        if (fo == NULL) { Py_DECREF(gt_acc); Py_CLEAR(result); break; }
        PyTuple_SET_ITEM(result, 1, fo);
        PyTuple_SET_ITEM(result, 2, gt_acc);
        break;
    }
    PyBuffer_Release(&xb);
    PyBuffer_Release(&gb);
    return result;
}

/* A method's two array arguments as buffers of n float64 values (after ready()). */
static int two_bufs(Engine *e, PyObject *const *args, Py_ssize_t nargs, const char *method,
                    Py_ssize_t n, int writable, Py_buffer *a, const char *wa, Py_buffer *b,
                    const char *wb)
{
    if (!ready(e)) return -1;
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "%s takes 2 arguments", method);
        return -1;
    }
    if (get_buf(args[0], a, n, writable, wa) < 0) return -1;
    if (get_buf(args[1], b, n, writable, wb) < 0) { PyBuffer_Release(a); return -1; }
    return 0;
}

PyDoc_STRVAR(update_doc,
"update(g_old, g)\n--\n\n"
"The curvature pair of the last iteration: s = stp·d, y = g − g_old; skipped when\n"
"sᵀy ≤ ε·(−gᵀs); a singular N forgets the memory. Returns True when the pair was kept.");

static PyObject *engine_update(Engine *e, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer ob, nb;
    if (two_bufs(e, args, nargs, "update", e->n, 0, &ob, "g_old", &nb, "g") < 0) return NULL;
    if (!e->pending) { /* no accepted step since the last update */
        PyBuffer_Release(&ob); PyBuffer_Release(&nb);
        Py_RETURN_FALSE;
    }
    e->pending = 0;
    const double *g0 = ob.buf, *g1 = nb.buf;
    double *y = e->ymem, *d = e->dvec;
    Py_ssize_t n = e->n;
    double stp = e->stp, sty, gts;
    for (Py_ssize_t i = 0; i < n; i++) y[i] = g1[i] - g0[i];
    PyBuffer_Release(&ob); PyBuffer_Release(&nb);
    if (stp == 1.0) {
        sty = e->gd - e->gd_old; gts = -e->gd_old;
    } else {
        sty = (e->gd - e->gd_old) * stp; gts = -e->gd_old * stp;
        for (Py_ssize_t i = 0; i < n; i++) d[i] = stp * d[i];
    }
    if (sty <= e->eps * gts) Py_RETURN_FALSE;
    if (!mem_update(e, d, y, sty, stp * stp * e->dtd)) {
        engine_reset(e);
        Py_RETURN_FALSE;
    }
    Py_RETURN_TRUE;
}

static PyObject *engine_pgnorm(Engine *e, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer xb, gb;
    if (two_bufs(e, args, nargs, "pgnorm", e->n, 0, &xb, "x", &gb, "g") < 0) return NULL;
    double v = pg_norm(e, xb.buf, gb.buf);
    PyBuffer_Release(&xb); PyBuffer_Release(&gb);
    return PyFloat_FromDouble(v);
}

PyDoc_STRVAR(pairs_doc,
"pairs(S, Y)\n--\n\n"
"Copy the pairs in memory, oldest first, into S and Y (float64, k × n, k = self.k).");

static PyObject *engine_pairs(Engine *e, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer sb, yb;
    if (two_bufs(e, args, nargs, "pairs", e->n * e->k, 1, &sb, "S", &yb, "Y") < 0) return NULL;
    for (Py_ssize_t j = 0; j < e->k; j++) {
        memcpy((double *)yb.buf + j * e->n, VROW(e, 2 * j), (size_t)e->n * sizeof(double));
        memcpy((double *)sb.buf + j * e->n, VROW(e, 2 * j + 1), (size_t)e->n * sizeof(double));
    }
    PyBuffer_Release(&sb); PyBuffer_Release(&yb);
    Py_RETURN_NONE;
}

static PyObject *engine_get_k(Engine *e, void *closure)
{
    (void)closure;
    return PyLong_FromSsize_t(e->k);
}

static PyObject *engine_get_theta(Engine *e, void *closure)
{
    (void)closure;
    return PyFloat_FromDouble(e->theta);
}

static PyMethodDef engine_methods[] = {
    {"iterate", (PyCFunction)(void (*)(void))engine_iterate, METH_FASTCALL, iterate_doc},
    {"update", (PyCFunction)(void (*)(void))engine_update, METH_FASTCALL, update_doc},
    {"pgnorm", (PyCFunction)(void (*)(void))engine_pgnorm, METH_FASTCALL,
     "pgnorm(x, g)\n--\n\nmax |proj gᵢ|, proj gᵢ = clip(gᵢ, xᵢ − uᵢ, xᵢ − lᵢ) (NaN if any is)."},
    {"pairs", (PyCFunction)(void (*)(void))engine_pairs, METH_FASTCALL, pairs_doc},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef engine_getset[] = {
    {"k", (getter)engine_get_k, NULL, "pairs in memory", NULL},
    {"theta", (getter)engine_get_theta, NULL, "θ of the memory", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject EngineType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "optkit.minimization._lbfgsb_core.Engine",
    .tp_basicsize = sizeof(Engine),
    .tp_dealloc = (destructor)engine_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Engine(lower, upper, m, empty, as_f64): the L-BFGS-B iteration on float64 "
              "vectors (see optkit.minimization.lbfgsb).",
    .tp_methods = engine_methods,
    .tp_getset = engine_getset,
    .tp_init = (initproc)engine_init,
    .tp_new = PyType_GenericNew,
};

/* --- optkit's lbfgs: the two-loop recursion ------------------------------------------------- */

PyDoc_STRVAR(two_loop_doc,
"two_loop(q, pairs, gamma)\n--\n\n"
"q ← H q in place, H the L-BFGS matrix of pairs [(s, y, rho), oldest first] on H0 = gamma·I:\n"
"directions.two_loop's recursion (Nocedal & Wright, Algorithm 7.4) on float64 vectors.");

static PyObject *two_loop(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    (void)mod;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "two_loop takes 3 arguments");
        return NULL;
    }
    double gamma = PyFloat_AsDouble(args[2]);
    if (gamma == -1.0 && PyErr_Occurred()) return NULL;
    Py_buffer qb;
    if (PyObject_GetBuffer(args[0], &qb, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_WRITABLE) < 0)
        return NULL;
    Py_ssize_t n = qb.len / 8;
    if (qb.itemsize != 8 || qb.format == NULL || strcmp(qb.format, "d") != 0) {
        PyBuffer_Release(&qb);
        PyErr_SetString(PyExc_ValueError, "q must be a writable float64 array");
        return NULL;
    }
    PyObject *seq = PySequence_Fast(args[1], "pairs must be a sequence of (s, y, rho)");
    if (seq == NULL) { PyBuffer_Release(&qb); return NULL; }
    Py_ssize_t k = PySequence_Fast_GET_SIZE(seq);
    Py_buffer *sb = PyMem_Calloc((size_t)(2 * k + 1), sizeof(Py_buffer));
    double *rho = PyMem_Malloc((size_t)(2 * k + 1) * sizeof(double)), *alpha = rho + k;
    PyObject *result = NULL;
    Py_ssize_t got = 0; /* buffers acquired (s and y of pairs 0 … got/2 − 1) */
    if (sb == NULL || rho == NULL) { PyErr_NoMemory(); goto done; }
    for (Py_ssize_t j = 0; j < k; j++) {
        PyObject *t = PySequence_Fast_GET_ITEM(seq, j);
        if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) != 3) {
            PyErr_SetString(PyExc_TypeError, "pairs must hold (s, y, rho) tuples");
            goto done;
        }
        if (get_buf(PyTuple_GET_ITEM(t, 0), &sb[got], n, 0, "s") < 0) goto done;
        got++;
        if (get_buf(PyTuple_GET_ITEM(t, 1), &sb[got], n, 0, "y") < 0) goto done;
        got++;
        rho[j] = PyFloat_AsDouble(PyTuple_GET_ITEM(t, 2));
        if (rho[j] == -1.0 && PyErr_Occurred()) goto done;
    }
    double *q = qb.buf;
    for (Py_ssize_t j = k - 1; j >= 0; j--) {
        const double *sj = sb[2 * j].buf, *yj = sb[2 * j + 1].buf;
        double a = rho[j] * dot(sj, q, n);
        alpha[j] = a;
        for (Py_ssize_t i = 0; i < n; i++) q[i] += -a * yj[i];
    }
    for (Py_ssize_t i = 0; i < n; i++) q[i] *= gamma;
    for (Py_ssize_t j = 0; j < k; j++) {
        const double *sj = sb[2 * j].buf, *yj = sb[2 * j + 1].buf;
        double c = alpha[j] - rho[j] * dot(yj, q, n);
        for (Py_ssize_t i = 0; i < n; i++) q[i] += c * sj[i];
    }
    Py_INCREF(args[0]);
    result = args[0];
done:
    for (Py_ssize_t j = 0; j < got; j++) PyBuffer_Release(&sb[j]);
    PyMem_Free(sb);
    PyMem_Free(rho);
    Py_DECREF(seq);
    PyBuffer_Release(&qb);
    return result;
}

static PyMethodDef module_methods[] = {
    {"two_loop", (PyCFunction)(void (*)(void))two_loop, METH_FASTCALL, two_loop_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "_lbfgsb_core",
    "L-BFGS in C for float64: the L-BFGS-B iteration (optkit.minimization.lbfgsb's C engine) "
    "and the two-loop recursion of optkit's lbfgs (directions.two_loop).",
    -1, module_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__lbfgsb_core(void)
{
    if (PyType_Ready(&EngineType) < 0) return NULL;
    PyObject *mod = PyModule_Create(&moduledef);
    if (mod == NULL) return NULL;
    Py_INCREF(&EngineType);
    if (PyModule_AddObject(mod, "Engine", (PyObject *)&EngineType) < 0) {
        Py_DECREF(&EngineType);
        Py_DECREF(mod);
        return NULL;
    }
    return mod;
}
