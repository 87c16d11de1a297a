select school_year, count(*)
from doe.k12_enrollment
where grade in (9, 10, 11, 12)
  and school_year between 2019 and 2023 -- five years
group by school_year;
