/* libdydca: the dydca client decoder as a C library (C99 and C++).
 *
 * A dydca file (.mkv written by `dydca encode`: a low-resolution H.264 stream
 * plus a small super-resolution network) goes in; full-size 8-bit 4:2:0
 * pictures come out, upscaled on the CPU, at a fixed QoS level or at the level
 * the QoS controller picks to keep up with the frame rate. No LibTorch.
 *
 * Usage:
 *
 *   #include <dydca/dydca.h>
 *
 *   DydcaSettings s;
 *   dydca_default_settings(&s);
 *   s.threads = 2;                          // 0 = all cores
 *   s.level = -1;                           // -1 = auto (QoS controller), >= 0 fixed
 *
 *   DydcaContext* ctx = NULL;
 *   int err = dydca_open(&ctx, "in.mkv", &s);
 *   if (err < 0) {                          // ctx is NULL; the message is this thread's
 *     fprintf(stderr, "%s (%s)\n", dydca_last_error(NULL), dydca_error_string(err));
 *     return 1;
 *   }
 *   DydcaInfo info;
 *   dydca_get_info(ctx, &info);             // output size, frame rate, levels, ...
 *   DydcaPicture pic;
 *   while ((err = dydca_get_picture(ctx, &pic)) == DYDCA_OK) {
 *     // pic.planes[0..2], pic.stride[0..2], pic.width x pic.height, pic.level
 *     dydca_picture_unref(&pic);
 *   }
 *   if (err != DYDCA_ERR_EOS) fprintf(stderr, "%s\n", dydca_last_error(ctx));
 *   dydca_close(&ctx);
 *
 * A player polls instead (settings.nonblocking = 1: DYDCA_ERR_AGAIN while no
 * picture is ready), keeps its own clock, and with settings.caller_reports_late
 * = 1 calls dydca_report_late(ctx, pic.frame) for each picture it showed after
 * its time: the QoS controller then steps down on what the viewer saw.
 *
 * Flow: dydca_open() reads the header and the models and starts the decode on
 * library threads (H.264 decode, SR, output), which run up to queue_depth
 * pictures ahead of the caller. dydca_get_picture() hands them out in order;
 * the end of the stream is DYDCA_ERR_EOS, not an error. dydca_close() stops
 * the threads at any point.
 *
 * Ownership: a picture's planes belong to the library until
 * dydca_picture_unref(); a picture stays valid after dydca_close() of its
 * context. Strings returned by the library are owned by it.
 *
 * Threads: one context is used from one thread at a time, except
 * dydca_set_level() and dydca_report_late(), which may be called from any
 * thread while another one waits in dydca_get_picture(). Different contexts
 * are independent.
 *
 * Errors: functions return DYDCA_OK (0) or a negative DYDCA_ERR_* code;
 * dydca_last_error() has the one-line message of the context's last failure.
 */
#ifndef DYDCA_DYDCA_H
#define DYDCA_DYDCA_H

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#define DYDCA_API
#elif defined(__GNUC__)
#define DYDCA_API __attribute__((visibility("default")))
#else
#define DYDCA_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---- version ------------------------------------------------------------ */

/* Version of this API (the header). MAJOR changes break the ABI; MINOR adds
 * (1.1: simd, target_fps, caller_reports_late in the settings;
 * dydca_report_late, dydca_get_stats, dydca_get_picture_stats,
 * dydca_write_qos_trace). */
#define DYDCA_API_VERSION_MAJOR 1
#define DYDCA_API_VERSION_MINOR 1
#define DYDCA_API_VERSION_PATCH 0
#define DYDCA_API_VERSION \
  ((DYDCA_API_VERSION_MAJOR << 16) | (DYDCA_API_VERSION_MINOR << 8) | DYDCA_API_VERSION_PATCH)

/* The library's version string, e.g. "0.1.0" (dydca's release, not the API's). */
DYDCA_API const char* dydca_version(void);
/* DYDCA_API_VERSION of the library at run time (compare its major with the header's). */
DYDCA_API unsigned dydca_api_version(void);

/* ---- error codes ---------------------------------------------------------- */

#define DYDCA_OK 0
#define DYDCA_ERR_AGAIN (-1)        /* no picture yet (nonblocking); call again */
#define DYDCA_ERR_EOS (-2)          /* end of stream: every picture was returned */
#define DYDCA_ERR_INVALID_DATA (-3) /* damaged, truncated or inconsistent input */
#define DYDCA_ERR_UNSUPPORTED (-4)  /* valid input this build or CPU cannot decode */
#define DYDCA_ERR_NOMEM (-5)        /* out of memory */
#define DYDCA_ERR_CANCELLED (-6)    /* the decode was stopped before its end */
#define DYDCA_ERR_IO (-7)           /* the input cannot be opened or read */
#define DYDCA_ERR_INVALID_ARG (-8)  /* NULL pointer, value out of range */
#define DYDCA_ERR_FAILED (-9)       /* any other failure; dydca_last_error() says what */

/* A static English name of a code ("end of stream", ...); never NULL. */
DYDCA_API const char* dydca_error_string(int code);

/* ---- settings ----------------------------------------------------------- */

typedef enum DydcaPrecision {
  DYDCA_PRECISION_AUTO = 0, /* int8 when the model carries int8 scales and the CPU has AVX2 */
  DYDCA_PRECISION_FP32 = 1,
  DYDCA_PRECISION_INT8 = 2 /* opening fails (UNSUPPORTED) on a model without int8 scales */
} DydcaPrecision;

/* Kernels of the SR (DydcaSettings.simd, DydcaStats.simd). */
typedef enum DydcaSimd {
  DYDCA_SIMD_AUTO = 0, /* the best this CPU has */
  DYDCA_SIMD_NONE = 1, /* the scalar reference */
  DYDCA_SIMD_AVX2 = 2,
  DYDCA_SIMD_AVX512 = 3 /* opening fails (UNSUPPORTED) on a CPU without it */
} DydcaSimd;

/* Log levels of the log callback. */
#define DYDCA_LOG_ERROR 0
#define DYDCA_LOG_WARNING 1
#define DYDCA_LOG_INFO 2
#define DYDCA_LOG_DEBUG 3

typedef struct DydcaSettings {
  /* sizeof(DydcaSettings) as the caller compiled it; set by
   * dydca_default_settings(). A library newer than the header fills the fields
   * it has beyond struct_size with their defaults. */
  size_t struct_size;
  int threads;              /* SR workers; 0 = all cores (default 0) */
  int level;                /* -1 = auto: the QoS controller (default); >= 0 a fixed QoS
                             * level (0 = richest) */
  int precision;            /* a DydcaPrecision; default DYDCA_PRECISION_AUTO */
  int64_t max_frames;       /* stop after this many pictures; 0 = all (default) */
  int queue_depth;          /* pictures in flight between stages and ahead of the caller,
                             * 1..64 (default 3) */
  int nonblocking;          /* != 0: dydca_get_picture() returns DYDCA_ERR_AGAIN instead of
                             * waiting (default 0) */
  int plain_scale;          /* a plain video (no dydca model, opened by path): bicubic
                             * factor 1..8 (default 2) */
  /* Log messages up to log_level (default DYDCA_LOG_WARNING) go to
   * log_callback(log_opaque, level, message) on a library thread; NULL: errors
   * and warnings go to stderr. The library's logging is process-wide: while
   * several contexts are open, each callback sees every context's messages
   * (they name the file). Setting a callback also routes FFmpeg's av_log into
   * it (av_log_set_callback, process-wide). The callback must not call the
   * library. */
  int log_level;
  void (*log_callback)(void* opaque, int level, const char* message);
  void* log_opaque;
  /* ---- 1.1 (taken from the reserved bytes: the struct's size is 1.0's) ---- */
  double target_fps;        /* frame rate the QoS controller holds; 0 = the stream's
                             * (default 0) */
  int simd;                 /* a DydcaSimd; default DYDCA_SIMD_AUTO */
  int caller_reports_late;  /* != 0: the caller (a player, which knows when each picture
                             * is due) reports late pictures with dydca_report_late(), and
                             * the QoS controller takes lateness from those reports only.
                             * 0 (default): a frame is late when its SR + decode time
                             * exceeds the frame interval. */
  uint8_t reserved[48]; /* zero; room for new fields without changing the size */
} DydcaSettings;

/* Fills *s with the defaults above. */
DYDCA_API void dydca_default_settings(DydcaSettings* s);

/* ---- custom input --------------------------------------------------------- */

/* whence of DydcaIO.seek asking for the total size instead of moving. */
#define DYDCA_SEEK_SIZE 0x10000

/* The caller's bytes instead of a path. The callbacks run on the thread in
 * dydca_open_io(), then on a library thread (never two at once), until
 * dydca_close() returns. */
typedef struct DydcaIO {
  void* opaque;
  /* Up to size bytes into buf: the number read, 0 at the end of the input,
   * < 0 on a failure. */
  int (*read)(void* opaque, uint8_t* buf, int size);
  /* SEEK_SET / SEEK_CUR / SEEK_END: the new position; DYDCA_SEEK_SIZE: the
   * input's size. < 0 when it cannot. May be NULL (input not seekable: a
   * dydca file streams from its start). */
  int64_t (*seek)(void* opaque, int64_t offset, int whence);
} DydcaIO;

/* ---- context ---------------------------------------------------------------- */

typedef struct DydcaContext DydcaContext;

/* Opens a dydca file (or, with a bicubic fallback and a warning, a plain
 * video FFmpeg reads) and starts decoding. Blocks while the header, the
 * models and the SR runtime are prepared, and with level -1 while the QoS
 * controller calibrates (about two frames' SR per level).
 * On success *out is a new context; on failure *out is NULL and
 * dydca_last_error(NULL) has the message (per thread).
 * Returns DYDCA_OK, or
 *   DYDCA_ERR_INVALID_ARG   out, path or settings NULL, a setting out of range,
 *                           a fixed level >= the file's levels;
 *   DYDCA_ERR_IO            the file cannot be opened or read;
 *   DYDCA_ERR_INVALID_DATA  not a readable video, or a damaged dydca file;
 *   DYDCA_ERR_UNSUPPORTED   a newer dydca format, no video stream, int8 asked of
 *                           a model without int8 scales;
 *   DYDCA_ERR_NOMEM, DYDCA_ERR_FAILED. */
DYDCA_API int dydca_open(DydcaContext** out, const char* path, const DydcaSettings* settings);

/* Same from the caller's read/seek callbacks (*io is copied; its opaque must
 * stay valid until dydca_close()). Plain videos are decoded from a path only.
 * Returns as dydca_open(), and DYDCA_ERR_INVALID_ARG for io or io->read NULL,
 * DYDCA_ERR_UNSUPPORTED for a plain video. */
DYDCA_API int dydca_open_io(DydcaContext** out, const DydcaIO* io, const DydcaSettings* settings);

typedef struct DydcaInfo {
  int width, height;       /* output pictures (full size, after the crop) */
  int lr_width, lr_height; /* the H.264 stream */
  int scale;               /* output = LR x scale (minus the crop) */
  int fps_num, fps_den;    /* frame rate */
  int64_t frames;          /* pictures to expect (max_frames applied); 0 = unknown */
  int levels;              /* QoS levels 0..levels-1 (0 richest); 1 for a plain video */
  int auto_level;          /* 1: the QoS controller is available (level -1 works) */
  int format_version;      /* 0 = plain video (bicubic), 1 or 2 = dydca file format */
  int segments;            /* model segments in the file (0 for a plain video) */
} DydcaInfo;

/* Stream information, known from dydca_open() on.
 * Returns DYDCA_OK, or DYDCA_ERR_INVALID_ARG (ctx or out NULL). */
DYDCA_API int dydca_get_info(const DydcaContext* ctx, DydcaInfo* out);

/* ---- pictures ---------------------------------------------------------------- */

typedef struct DydcaPicture {
  uint8_t* planes[3];  /* Y, U, V, 8-bit; chroma is (width+1)/2 x (height+1)/2 */
  ptrdiff_t stride[3]; /* bytes from one row to the next */
  int width, height;   /* luma size = DydcaInfo width x height */
  int64_t frame;       /* output index, 0, 1, 2, ... */
  double pts;          /* presentation time in seconds: frame / frame rate */
  int level;           /* QoS level this picture was upscaled at (0 for plain videos) */
  void* ref;           /* the library's reference; NULL once unreferenced */
} DydcaPicture;

/* The next picture in presentation order. Blocks until it is decoded unless
 * the context is nonblocking.
 * Returns DYDCA_OK with *out filled (release it with dydca_picture_unref), or
 *   DYDCA_ERR_AGAIN         nonblocking and no picture is ready yet;
 *   DYDCA_ERR_EOS           every picture has been returned (and again after);
 *   DYDCA_ERR_INVALID_DATA  the stream is damaged or truncated (the pictures
 *                           before the damage were returned first);
 *   DYDCA_ERR_CANCELLED, DYDCA_ERR_IO, DYDCA_ERR_NOMEM, DYDCA_ERR_UNSUPPORTED,
 *   DYDCA_ERR_FAILED        the decode stopped (returned again on every call);
 *   DYDCA_ERR_INVALID_ARG   ctx or out NULL.
 * *out is zeroed on every return but DYDCA_OK. */
DYDCA_API int dydca_get_picture(DydcaContext* ctx, DydcaPicture* out);

/* Gives a picture's buffer back (it is reused for a later picture) and zeroes
 * *pic. NULL or an already unreferenced picture is a no-op. */
DYDCA_API void dydca_picture_unref(DydcaPicture* pic);

/* ---- control ------------------------------------------------------------------ */

/* QoS level of the pictures upscaled from now on (pictures already in the
 * queue keep theirs): >= 0 fixed, -1 auto (the QoS controller; it resumes
 * from its last state).
 * Returns DYDCA_OK, or DYDCA_ERR_INVALID_ARG (ctx NULL, level < -1 or >= the
 * file's levels), DYDCA_ERR_UNSUPPORTED (-1 on a file
 * without the QoS controller: plain or multi-model; the level is unchanged). */
DYDCA_API int dydca_set_level(DydcaContext* ctx, int level);

/* For a caller that shows pictures at their time (a player, with
 * settings.caller_reports_late): picture `frame` (its DydcaPicture.frame) was
 * shown late (logged at DYDCA_LOG_DEBUG). The QoS controller counts it on the
 * next frame it chooses (two late frames in a row step down). Any thread.
 * Without a QoS controller (plain and multi-model files) it is ignored.
 * Returns DYDCA_OK, or DYDCA_ERR_INVALID_ARG (ctx NULL, frame < 0). */
DYDCA_API int dydca_report_late(DydcaContext* ctx, int64_t frame);

/* ---- statistics (1.1) ---------------------------------------------------------- */

/* Levels a file may have (the container's cap). */
#define DYDCA_MAX_LEVELS 16

/* How the decode ran. The caller sets struct_size = sizeof(DydcaStats)
 * before the call: a newer library fills what fits in it, an older one
 * zeroes what it does not know. */
typedef struct DydcaStats {
  size_t struct_size;
  /* Known from dydca_open() on. */
  int has_audio;         /* the input has an audio track (not decoded; a muxer may copy it) */
  int auto_level;        /* the QoS controller chose the levels from the first picture */
  double calibration_ms; /* its start-up calibration, inside dydca_open() */
  /* Filled when the decode has ended well (complete = 1): at the latest when
   * dydca_get_picture() returns DYDCA_ERR_EOS. 0 before, and after a failure. */
  int complete;
  int64_t frames;                          /* pictures decoded */
  double decode_ms, chroma_ms, sr_ms;      /* mean per picture: H.264 decode, bicubic
                                            * chroma (plain videos: all planes), SR */
  int64_t level_frames[DYDCA_MAX_LEVELS];  /* pictures per QoS level */
  int simd;                                /* a DydcaSimd (not AUTO): the SR kernels run */
  int precision;                           /* DYDCA_PRECISION_FP32 or _INT8 (the last
                                            * segment's runtime) */
  int threads;                             /* SR workers */
  /* Segments (format 2; a format-1 file is one segment). */
  int64_t segment_switches; /* pictures whose SR moved to the next segment's runtime */
  int64_t switch_waits;     /* ... of which that runtime was not ready yet */
  int max_runtimes_alive;   /* SR runtimes alive at once, at most */
  double prepare_ms;        /* background time preparing segments (model + runtime) */
  double switch_sr_p50_ms, switch_sr_p99_ms; /* SR time of the switch pictures */
  double other_sr_p50_ms, other_sr_p99_ms;   /* ... of every other picture */
  /* Multi-model files (format 1, models > 1). */
  int models, models_loaded;
  double model_load_ms;
  int64_t tile_switches, frame_switches;
  int64_t runtime_bytes; /* arenas + packed weights of the SR runtimes */
} DydcaStats;

/* Returns DYDCA_OK, or DYDCA_ERR_INVALID_ARG (ctx or out NULL, out->struct_size
 * smaller than a size_t or above 4096). */
DYDCA_API int dydca_get_stats(const DydcaContext* ctx, DydcaStats* out);

/* Per picture, while it is referenced (struct_size as for DydcaStats). */
typedef struct DydcaPictureStats {
  size_t struct_size;
  double decode_ms, chroma_ms, sr_ms; /* this picture's stages (sr_ms includes a segment
                                       * switch's wait) */
  int segment_switch; /* 1: the first picture of a segment after the first */
} DydcaPictureStats;

/* Returns DYDCA_OK, or DYDCA_ERR_INVALID_ARG (pic or out NULL, pic unreferenced,
 * a bad struct_size). */
DYDCA_API int dydca_get_picture_stats(const DydcaPicture* pic, DydcaPictureStats* out);

/* Writes the QoS controller's trace so far to `path` as CSV, one row per
 * frame it chose:
 *   frame,t_s,level,macs,sr_ms,overhead_ms,predicted_ms,budget_ms,slowdown,late
 * (t_s counts from its first choice; the last frame's row comes with the end
 * of the decode). Any time, e.g. after DYDCA_ERR_EOS or when a player stops.
 * Returns DYDCA_OK, or DYDCA_ERR_INVALID_ARG (ctx or path NULL),
 * DYDCA_ERR_UNSUPPORTED (no QoS controller: a plain or multi-model file),
 * DYDCA_ERR_IO (cannot write; dydca_last_error says why). */
DYDCA_API int dydca_write_qos_trace(DydcaContext* ctx, const char* path);

/* The one-line message of the context's last failure ("" when none): set by
 * dydca_get_picture() and dydca_write_qos_trace() (dydca_set_level() reports
 * by its code only). Valid
 * until the next call on the context. NULL ctx: the message of this thread's
 * last failed dydca_open() / dydca_open_io() ("" when none). */
DYDCA_API const char* dydca_last_error(const DydcaContext* ctx);

/* Stops the decode threads (at any point: mid-stream, after an error, before
 * the first picture), frees the context and sets *ctx to NULL. Pictures not
 * yet unreferenced stay valid. NULL or *ctx NULL is a no-op. */
DYDCA_API void dydca_close(DydcaContext** ctx);

#ifdef __cplusplus
}
#endif

#endif /* DYDCA_DYDCA_H */
