#include "sn_test.h"
static void test_placeholder(void) { CU_ASSERT(1); }
static CU_TestInfo tests[] = { {"placeholder", test_placeholder}, CU_TEST_INFO_NULL };
int main(void) { return sn_test_main("pool", tests, 60); }
