package api

import "github.com/gin-gonic/gin"

// storedDoc is a stored state document's revision.
type storedDoc struct {
	rev  int
	body string
}

// storedConfig reads a stored state document (rev 0: the latest); a name
// or revision the store does not have is a 404.
func (s *Server) storedConfig(c *gin.Context, name string, rev int) (storedDoc, error) {
	if err := checkConfigName(name); err != nil {
		return storedDoc{}, err
	}
	if rev < 0 {
		return storedDoc{}, badRequestf("rev %d: want a revision number from 1 (0: the latest)", rev)
	}
	cfg, err := s.Store.GetConfig(c.Request.Context(), name, rev)
	if err != nil {
		return storedDoc{}, err
	}
	return storedDoc{rev: cfg.Rev, body: string(cfg.Body)}, nil
}
