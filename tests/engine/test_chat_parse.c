#include "lib/test.h"
int main(void){return 0;}
