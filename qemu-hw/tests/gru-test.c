#include "qemu/osdep.h"
#include "libqtest.h"
static void test_nothing(void)
{
    QTestState *qts = qtest_init("-M q35 -device gru-tlb");
    qtest_quit(qts);
}
int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    qtest_add_func("/gru/nothing", test_nothing);
    return g_test_run();
}
