/* sn_chan.c: being written */
