/* A test run meant for one of oneDNN's ISAs (ctest sets DNNL_MAX_CPU_ISA and
 * LOOM_TEST_ISA, CMakeLists.txt "Every kernel path") is skipped, not passed,
 * when this CPU or build cannot give that ISA: the run would repeat another. */
#ifndef LOOM_TEST_ISA_H
#define LOOM_TEST_ISA_H

#include <stdlib.h>
#include <string.h>

#include "models/exec_impl.h"

#define TEST_REQUIRE_ISA()                                                                     \
    do {                                                                                       \
        const char *want_ = getenv("LOOM_TEST_ISA");                                           \
        if (want_ && *want_) {                                                                 \
            if (strcmp(loom_dnn_isa(), want_))                                                 \
                TEST_SKIP("asked for oneDNN's %s code, this machine gives: %s", want_, loom_dnn_isa()); \
            printf("oneDNN capped at %s\n", want_);                                           \
        }                                                                                      \
    } while (0)

#endif
