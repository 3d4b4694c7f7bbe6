"""Reports: the monthly energy report and the yearly report to the Ministry."""
