/* sn_sock.c: being written */
