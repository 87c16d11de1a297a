/* lead */ SELECT /* in */ a, COUNT(*) -- line
/* multi
   line ** */ FROM b.c /*/ odd **/ WHERE x = '/* not */'
GROUP BY a;