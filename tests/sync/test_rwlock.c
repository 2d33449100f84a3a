/* placeholder: filled in by the event tests */
int main(void)
{
    return 0;
}
