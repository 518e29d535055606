/* sn_addr.c: being written */
