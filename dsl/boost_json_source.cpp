// Boost.JSON's implementation, compiled here when the build has no Boost.JSON library (the
// GPU machine's header-only build: -Ddeps_prefix). Otherwise this file is empty.
#ifdef BRAID_BOOST_JSON_SOURCE
#include <boost/json/src.hpp>
#endif
