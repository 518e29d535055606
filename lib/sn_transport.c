/* sn_transport.c: being written */
