/* sn_pool.c: being written */
