// test_container_v2: see the TEST_CASEs below.
#include <doctest/doctest.h>
