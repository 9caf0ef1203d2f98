#include <iostream>

#include "client/exportctl.h"

int main(int argc, char** argv) { return RunExportctl(argc, argv, std::cout, std::cerr, std::cin); }
