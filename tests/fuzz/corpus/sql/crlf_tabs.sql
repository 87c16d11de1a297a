SELECT a
	FROM b.c
WHERE	x = 1 -- done
;