/* sn_server.c: being written */
