// test_media_stream: see the TEST_CASEs below.
#include <doctest/doctest.h>
